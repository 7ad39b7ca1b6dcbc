"""Admission of instance requests: may this desired state be recorded at all?

Checked before anything is written, so that a refused request changes nothing: the
tenant is active, the version is published and usable (deprecated warns, retired
refuses), upgrades follow the declared upgrade-from range, the plan exists, the
parameters match the release's schema (errors point at ``parameters.<path>``), the tenant's
limits hold and the name is a DNS label that fits the namespace ``<tenant>--<name>``
(``controlplane.tenants.names`` has the rules; ``hostnames`` decides the host name).

This module must not know about HTTP or roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from controlplane.catalog.errors import ServiceNotInCatalog, VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import Plan, ServiceRelease, VersionStatus
from controlplane.catalog.publishing import VersionNotPublished, find_version, newest_active
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.versions import parse_version, upgrade_refusal
from controlplane.db.types import utcnow
from controlplane.errors import Conflict, ErrorItem, InvalidInput
from controlplane.provisioning.models import Instance
from controlplane.rendering import Renderer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.models import Tenant, TenantStatus
from controlplane.tenants.names import (
    INSTANCE_NAME_MAX,
    NAMESPACE_SEPARATOR,
    name_problem,
    reserved_slug,
)

NAME_MAX = INSTANCE_NAME_MAX
NAMESPACE_MAX = 63

#: Validates parameters against a release and answers them with defaults applied.
ParameterCheck = Callable[[ServiceRelease, Mapping[str, Any]], dict[str, Any]]


def parameter_check(
    server_secret: bytes, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> ParameterCheck:
    """The one place that decides how parameters are validated (the renderer's rules)."""
    return Renderer(
        server_secret=server_secret, kubernetes_version=kubernetes_version
    ).resolve_parameters


class AdmissionRefused(InvalidInput):
    """The instance request cannot be admitted."""

    title = "Instance request refused"
    code = "admission_refused"


class VersionRetired(Conflict):
    """This service version is retired and accepts no new instances or upgrades."""

    title = "Version retired"
    code = "version_retired"


class TenantLimitReached(Conflict):
    """The tenant has reached one of its limits."""

    title = "Tenant limit reached"
    code = "tenant_limit"


class TenantNotActive(Conflict):
    """The tenant is not active, so its instances cannot change."""

    title = "Tenant not active"
    code = "tenant_not_active"


@dataclass
class Admitted:
    """What admission decided: the release to use and the warnings to show."""

    record: PublishedVersion
    release: ServiceRelease
    plan: Plan
    parameters: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def check_name(tenant: Tenant, name: str) -> None:
    """The name is a DNS label without ``--`` and ``<tenant>--<name>`` fits a namespace.

    A tenant whose slug predates the naming rules (``--`` in it, or reserved) keeps its
    existing instances but gets no new ones: their namespaces could be another's.
    """
    slug_problem = name_problem(tenant.slug, max_length=NAMESPACE_MAX)
    if slug_problem is not None or reserved_slug(tenant.slug):
        raise AdmissionRefused(
            f"Tenant {tenant.slug!r} cannot get new instances: its slug predates the naming "
            "rules, and its namespaces could collide with others'.",
            errors=[ErrorItem("tenant", slug_problem or "the slug is reserved")],
            hint="An operator can onboard the municipality again under a valid slug "
            "(`cityctl tenant create --slug`).",
        )
    problems: list[str] = []
    problem = name_problem(name, max_length=NAME_MAX)
    if problem is not None:
        problems.append(problem)
    elif len(tenant.slug) + len(NAMESPACE_SEPARATOR) + len(name) > NAMESPACE_MAX:
        room = NAMESPACE_MAX - len(tenant.slug) - len(NAMESPACE_SEPARATOR)
        problems.append(
            f"the namespace '{tenant.slug}{NAMESPACE_SEPARATOR}{name}' would exceed "
            f"{NAMESPACE_MAX} characters; use at most {room} characters"
        )
    if problems:
        raise AdmissionRefused(
            f"{name!r} cannot be an instance name.",
            errors=[ErrorItem("name", p) for p in problems],
        )


def check_tenant_active(tenant: Tenant) -> None:
    if tenant.status != TenantStatus.ACTIVE:
        raise TenantNotActive(
            f"Tenant {tenant.slug!r} is {tenant.status}; its instances cannot change.",
            hint="An operator can reactivate the tenant.",
        )


def live_instance_count(session: Session, tenant: Tenant) -> int:
    """Instances of ``tenant`` that count against its ``max_instances``."""
    return session.exec(
        select(func.count())
        .select_from(Instance)
        .where(
            Instance.tenant_id == tenant.id,
            col(Instance.deleted_at).is_(None),
            col(Instance.deletion_requested).is_(False),
        )
    ).one()


def check_capacity(session: Session, tenant: Tenant) -> None:
    live = live_instance_count(session, tenant)
    if live >= tenant.max_instances:
        raise TenantLimitReached(
            f"Tenant {tenant.slug!r} already has {live} of its {tenant.max_instances} instances.",
            hint="Delete an instance or ask an operator to raise max_instances.",
        )


def admit(
    session: Session,
    *,
    service: str,
    version: str | None,
    plan: str,
    parameters: Mapping[str, Any],
    check_parameters: ParameterCheck,
    current: Instance | None = None,
    rollback: bool = False,
) -> Admitted:
    """Decide on the desired state (service, version, plan, parameters) of one instance."""
    record = _resolve_version(session, service, version)
    warnings: list[str] = []
    changing_version = current is None or current.version != record.version
    if record.status == VersionStatus.RETIRED and changing_version:
        raise VersionRetired(
            f"{service} {record.version} is retired.",
            errors=[ErrorItem("version", "retired")],
            hint="Use a newer version (`cityctl catalog show " + service + "`).",
        )
    if record.status != VersionStatus.ACTIVE:
        ends = ""
        if record.support_ends is not None:
            past = record.support_ends < utcnow().date()
            ends = f"; {'unsupported since' if past else 'support ends'} {record.support_ends}"
        note = f" ({record.status_message})" if record.status_message else ""
        warnings.append(f"{service} {record.version} is {record.status}{ends}{note}.")
    release = record.to_release()
    if current is not None and changing_version and not rollback:
        _check_upgrade(current.version, release)
    chosen = release.plan(plan)
    if chosen is None:
        raise AdmissionRefused(
            f"{service} {record.version} has no plan {plan!r}.",
            errors=[ErrorItem("plan", "unknown plan")],
            hint=f"Plans: {', '.join(p.name for p in release.plans)}.",
        )
    resolved = check_parameters(release, parameters)
    return Admitted(
        record=record, release=release, plan=chosen, parameters=resolved, warnings=warnings
    )


def _resolve_version(session: Session, service: str, version: str | None) -> PublishedVersion:
    try:
        if version is None:
            return newest_active(session, service)
        record = find_version(session, service, version)
        if record is None:
            raise VersionNotPublished(f"{service} {version} is not published.")
        return record
    except ServiceNotInCatalog as exc:
        raise AdmissionRefused(
            f"There is no published service {service!r}.",
            errors=[ErrorItem("service", "not published")],
            hint="`cityctl catalog list` shows the published services.",
        ) from exc
    except VersionNotPublished as exc:
        raise AdmissionRefused(
            f"{service} {version} is not published.",
            errors=[ErrorItem("version", "not published")],
            hint=f"`cityctl catalog show {service}` lists its versions.",
        ) from exc


def _check_upgrade(current: str, release: ServiceRelease) -> None:
    # The one upgrade rule (catalog.versions), shared with fleet plans and the lifecycle.
    target = release.version
    try:
        refusal = upgrade_refusal(current, target.version, target.upgrade_from)
    except (VersionInvalid, VersionRangeInvalid) as exc:
        # Validation refuses such a range before publishing; a release published before
        # that rule still must not turn an update into a server error.
        raise AdmissionRefused(
            f"{release.name} {target.version} cannot be reached from {current}: {exc.detail}",
            errors=[ErrorItem("version", "the upgrade path cannot be read")],
            hint="Ask an operator to publish a version with a valid upgrade_from range.",
        ) from exc
    if refusal is None:
        return
    if parse_version(target.version) < parse_version(current):
        raise AdmissionRefused(
            f"{release.name} cannot go down from {current} to {target.version} by an update.",
            errors=[ErrorItem("version", "older than the current version")],
            hint="Use rollback to return to an earlier revision.",
        )
    declared = target.upgrade_from.strip() or "(none: no upgrade path declared)"
    raise AdmissionRefused(
        f"{release.name} {target.version} cannot be reached from {current}: it upgrades "
        f"only from {declared}.",
        errors=[ErrorItem("version", f"upgrade path requires {declared}")],
        hint="Upgrade through an intermediate version first "
        f"(`cityctl catalog show {release.name}` lists its versions and upgrade paths).",
    )
