"""Fleet plans: select the instances an upgrade applies to, preview each, freeze the waves.

An operator *plans* "service S from RANGE to VERSION over these tenants": the plan freezes
the affected instances (in waves of ``wave_size``) and, for each, the objects the upgrade
would add, change or remove (both versions rendered with the instance's inputs, per-object
digests compared). Instances in the range that cannot take part are recorded as excluded,
with the reason.

This module must not know about runs or how they are executed, nor about HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import VersionStatus
from controlplane.catalog.publishing import find_version, versions_of
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.versions import matches, parse_range, upgrade_refusal
from controlplane.errors import ErrorItem, InvalidInput
from controlplane.provisioning import instances
from controlplane.provisioning.fleet.errors import FleetPlanInvalid
from controlplane.provisioning.fleet.models import FleetPlan, FleetPlanItem
from controlplane.provisioning.fleet.thresholds import threshold_limit
from controlplane.provisioning.models import Instance, Target
from controlplane.provisioning.render_refs import instance_ref, target_ref, tenant_ref
from controlplane.provisioning.volumes import storage_floor
from controlplane.rendering.renderer import Renderer
from controlplane.rendering.tls import TlsIssuer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.models import Tenant, TenantStatus

#: A renderer for a target's Kubernetes minor version (the reconciler's cache, or a new one).
RendererFor = Callable[[str], Renderer]


@dataclass(frozen=True)
class PlanRequest:
    """What the operator asks for."""

    service: str
    from_range: str
    to_version: str
    tenants: Sequence[str] = ()
    wave_size: int = 10
    max_concurrency: int = 5
    pause_seconds: int = 0
    failure_threshold: str = "1"
    ignore_maintenance_windows: bool = False
    instance_timeout_seconds: int = 900


@dataclass(frozen=True)
class ObjectChanges:
    """The objects an upgrade adds, changes and removes (object ids, sorted)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


def diff_digests(old: Mapping[str, str], new: Mapping[str, str]) -> ObjectChanges:
    """Compare two ``object_id → digest`` maps."""
    return ObjectChanges(
        added=sorted(set(new) - set(old)),
        changed=sorted(k for k in set(old) & set(new) if old[k] != new[k]),
        removed=sorted(set(old) - set(new)),
    )


def preview_instance(
    session: Session,
    instance: Instance,
    to_version: str,
    *,
    renderer_for: RendererFor,
) -> ObjectChanges:
    """Render the instance on its version and on ``to_version``; what would change.

    Raises the renderer's ``InvalidInput`` when the instance's inputs do not render on the
    new version (e.g. a parameter the new schema refuses).
    """
    tenant = session.get(Tenant, instance.tenant_id)
    if tenant is None:
        raise instances.InstanceNotFound(f"Instance {instance.name!r} has no tenant.")
    target = session.exec(select(Target).where(Target.name == instance.target)).first()
    renderer = renderer_for(target.kubernetes_version if target else DEFAULT_KUBERNETES_VERSION)
    # What the reconciler would render: volumes keep the largest size they ever had.
    floor = storage_floor(session, instance.id)
    stacks = []
    for version in (instance.version, to_version):
        record = find_version(session, instance.service, version)
        if record is None:
            raise FleetPlanInvalid(f"{instance.service} {version} is not published.")
        stacks.append(
            renderer.render(
                record.to_release(),
                plan=instance.plan,
                tenant=tenant_ref(tenant),
                instance=instance_ref(instance),
                parameters=instance.parameters,
                storage_floor=floor,
                tls=TlsIssuer.from_config(target.config if target else None),
                target=target_ref(target),
            )
        )
    return diff_digests(stacks[0].object_digests(), stacks[1].object_digests())


def _check_request(session: Session, request: PlanRequest) -> PublishedVersion:
    errors: list[ErrorItem] = []
    if not versions_of(session, request.service):
        raise FleetPlanInvalid(
            f"There is no published service {request.service!r}.",
            errors=[ErrorItem("service", "not published")],
            hint="`cityctl catalog list` shows the published services.",
        )
    try:
        parse_range(request.from_range)
    except VersionRangeInvalid as exc:
        errors.append(ErrorItem("from", exc.detail))
    target = find_version(session, request.service, request.to_version)
    if target is None:
        errors.append(ErrorItem("to", f"{request.service} {request.to_version} is not published"))
    elif target.status == VersionStatus.RETIRED:
        errors.append(ErrorItem("to", f"{request.service} {request.to_version} is retired"))
    for name, value, low in (
        ("wave_size", request.wave_size, 1),
        ("max_concurrency", request.max_concurrency, 1),
        ("pause_seconds", request.pause_seconds, 0),
        ("instance_timeout_seconds", request.instance_timeout_seconds, 1),
    ):
        if value < low:
            errors.append(ErrorItem(name, f"must be at least {low}"))
    try:
        threshold_limit(request.failure_threshold, 1)
    except FleetPlanInvalid as exc:
        errors.extend(exc.errors)
    if errors or target is None:
        raise FleetPlanInvalid(
            f"The fleet plan for {request.service} cannot be made.", errors=errors
        )
    return target


def _selected_tenants(session: Session, slugs: Sequence[str]) -> dict[uuid.UUID, Tenant]:
    if not slugs:
        return {t.id: t for t in session.exec(select(Tenant)).all()}
    rows = {t.slug: t for t in session.exec(select(Tenant).where(col(Tenant.slug).in_(slugs)))}
    unknown = [
        ErrorItem(f"tenants[{i}]", "no such tenant") for i, s in enumerate(slugs) if s not in rows
    ]
    if unknown:
        raise FleetPlanInvalid("The plan names tenants that do not exist.", errors=unknown)
    return {t.id: t for t in rows.values()}


def upgrade_exclusion(from_version: str, to_version: str, upgrade_from: str) -> str | None:
    """Why a fleet plan leaves an instance on ``from_version`` out; ``None`` to include it.

    The same rule as admission and the lifecycle (:func:`catalog.versions.upgrade_refusal`);
    a stored range that cannot be read excludes the instance rather than failing the plan.
    """
    try:
        return upgrade_refusal(from_version, to_version, upgrade_from)
    except (VersionInvalid, VersionRangeInvalid) as exc:
        return f"{to_version} has an unreadable upgrade path: {exc.detail}"


def create_plan(
    session: Session,
    *,
    request: PlanRequest,
    renderer_for: RendererFor,
    context: AuditContext,
) -> FleetPlan:
    """Select the instances, preview each, freeze the plan (flushes; the caller commits)."""
    target = _check_request(session, request)
    reach = str(target.release.get("version", {}).get("upgrade_from", ""))
    tenants = _selected_tenants(session, list(request.tenants))
    candidates = session.exec(
        select(Instance).where(
            Instance.service == request.service,
            col(Instance.deleted_at).is_(None),
            col(Instance.deletion_requested).is_(False),
            col(Instance.purge_after).is_(None),  # retained: deleted, nothing runs
            col(Instance.tenant_id).in_(list(tenants)),
        )
    ).all()
    chosen: list[tuple[Tenant, Instance, ObjectChanges]] = []
    excluded: list[dict[str, Any]] = []

    def exclude(tenant: Tenant, instance: Instance, reason: str) -> None:
        excluded.append({"tenant": tenant.slug, "instance": instance.name, "reason": reason})

    for instance in candidates:
        tenant = tenants[instance.tenant_id]
        try:
            in_range = matches(instance.version, request.from_range)
        except VersionInvalid:
            in_range = False
        if not in_range or instance.version == request.to_version:
            continue
        if tenant.status != TenantStatus.ACTIVE:
            exclude(tenant, instance, f"tenant is {tenant.status}")
            continue
        refusal = upgrade_exclusion(instance.version, request.to_version, reach)
        if refusal is not None:
            exclude(tenant, instance, refusal)
            continue
        try:
            changes = preview_instance(
                session, instance, request.to_version, renderer_for=renderer_for
            )
        except InvalidInput as exc:
            exclude(tenant, instance, f"does not render on {request.to_version}: {exc.detail}")
            continue
        chosen.append((tenant, instance, changes))
    chosen.sort(key=lambda row: (row[0].slug, row[1].name))
    plan = FleetPlan(
        service=request.service,
        from_range=request.from_range,
        to_version=request.to_version,
        tenants=sorted(request.tenants),
        wave_size=request.wave_size,
        max_concurrency=request.max_concurrency,
        pause_seconds=request.pause_seconds,
        failure_threshold=request.failure_threshold.strip(),
        ignore_maintenance_windows=request.ignore_maintenance_windows,
        instance_timeout_seconds=request.instance_timeout_seconds,
        excluded=sorted(excluded, key=lambda e: (e["tenant"], e["instance"])),
        created_by=context.actor,
    )
    session.add(plan)
    session.flush()
    for position, (tenant, instance, changes) in enumerate(chosen):
        session.add(
            FleetPlanItem(
                plan_id=plan.id,
                instance_id=instance.id,
                tenant_id=tenant.id,
                tenant=tenant.slug,
                instance=instance.name,
                position=position,
                wave=position // request.wave_size,
                from_version=instance.version,
                changes=changes.as_dict(),
            )
        )
    session.flush()
    audit.record(
        session,
        context,
        action="fleet.plan.create",
        resource=f"fleet-plan:{plan.id}",
        details={
            "service": plan.service,
            "from": plan.from_range,
            "to": plan.to_version,
            "tenants": plan.tenants,
            "instances": len(chosen),
            "excluded": len(excluded),
        },
    )
    return plan
