"""Admission of instance requests: may this desired state be recorded at all?

Checked before anything is written, so that a refused request changes nothing: the
tenant is active, the version is published and usable (deprecated warns, retired
refuses), upgrades follow the declared upgrade-from range, the plan exists, the
parameters match the release's schema (errors point at ``parameters.<path>``), the tenant's
limits hold and the name is a DNS label that fits the namespace ``<tenant>-<name>``.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from semver import Version
from sqlmodel import Session, col, func, select

from controlplane.catalog.errors import ServiceNotInCatalog
from controlplane.catalog.models import Plan, ServiceRelease, VersionStatus
from controlplane.catalog.publishing import VersionNotPublished, find_version, newest_active
from controlplane.catalog.records import PublishedVersion
from controlplane.errors import Conflict, ErrorItem, InvalidInput
from controlplane.provisioning.models import Instance
from controlplane.rendering import Renderer
from controlplane.tenants.models import Tenant, TenantStatus

NAME_MAX = 40
NAMESPACE_MAX = 63
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: Validates parameters against a release and answers them with defaults applied.
ParameterCheck = Callable[[ServiceRelease, Mapping[str, Any]], dict[str, Any]]


def parameter_check(server_secret: bytes, kubernetes_version: str = "1.33") -> ParameterCheck:
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
    problems: list[str] = []
    if not _DNS_LABEL.match(name) or len(name) > NAME_MAX:
        problems.append(
            f"lowercase letters, digits and '-', at most {NAME_MAX} characters, "
            "starting and ending with a letter or digit"
        )
    elif len(tenant.slug) + 1 + len(name) > NAMESPACE_MAX:
        room = NAMESPACE_MAX - len(tenant.slug) - 1
        problems.append(
            f"the namespace '{tenant.slug}-{name}' would exceed {NAMESPACE_MAX} characters; "
            f"use at most {room} characters"
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


def check_capacity(session: Session, tenant: Tenant) -> None:
    live = session.exec(
        select(func.count())
        .select_from(Instance)
        .where(
            Instance.tenant_id == tenant.id,
            col(Instance.deleted_at).is_(None),
            col(Instance.deletion_requested).is_(False),
        )
    ).one()
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
        ends = f"; support ends {record.support_ends}" if record.support_ends else ""
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
    target = release.version
    try:
        old, new = Version.parse(current), Version.parse(target.version)
    except ValueError:
        return
    if new < old:
        raise AdmissionRefused(
            f"{release.name} cannot go down from {current} to {target.version} by an update.",
            errors=[ErrorItem("version", "older than the current version")],
            hint="Use rollback to return to an earlier revision.",
        )
    ranges = [r.strip() for r in target.upgrade_from.split(",") if r.strip()]
    if ranges and not all(old.match(r) for r in ranges):
        raise AdmissionRefused(
            f"{release.name} {target.version} cannot be reached from {current}: it upgrades "
            f"only from {target.upgrade_from}.",
            errors=[ErrorItem("version", f"upgrade path requires {target.upgrade_from}")],
            hint="Upgrade through an intermediate version first.",
        )
