"""Fleet upgrades: move many instances of one service to a new version, safely.

An operator *plans* "service S from RANGE to VERSION over these tenants": the plan freezes
the affected instances (in waves) and, for each, the objects the upgrade would add, change
or remove (both versions rendered with the instance's inputs, per-object digests compared).
A *run* executes a plan. The executor is level-based: :func:`tick` looks at every active
run, observes the instances in flight, decides, records the next steps and returns; it is
called periodically by the reconcile worker (``provisioning.worker``), and all its memory
is in the database (``fleet_models``), so a run survives a restart and any worker can go on.

Rules of a run:

- waves of ``wave_size`` instances, at most ``max_concurrency`` in flight, ``pause_seconds``
  between the end of a wave and the start of the next;
- an instance starts only inside its tenant's maintenance window (Europe/Brussels); outside
  it waits as ``skipped_window`` and the run goes on with others; it starts when the window
  opens (unless the plan ignores windows);
- an upgrade goes through :func:`provisioning.instances.update_instance` (admission,
  generation bump, reconcile request) — success is Ready with ``observed_generation ==
  generation`` on the new version; Failed, workloads failed, or not Ready within the
  per-instance timeout is a failure, and the instance is rolled back at once to the inputs of
  the revision it ran before (:func:`provisioning.instances.rollback_instance`) — never
  across a version with forward-only data migrations: that rollback is refused, the item
  fails with the refusal and the instance stays on the new version for an operator to decide
  (``cityctl instance rollback NAME --allow-data-loss`` or repair forward);
- when the failures (since the last resume) reach the threshold, the run stops with a report;
  in-flight upgrades finish; resume goes on with the instances not yet started;
- pause and cancel never interrupt an instance half-way: in-flight upgrades (and
  rollbacks) finish, nothing new starts; cancel marks the rest ``cancelled`` (on the old
  version).

Every step writes an audit event. Time is always the ``now`` handed in, never read here,
so that tests control the clock.

This module must not know about HTTP, FastAPI, Typer or how the worker is scheduled.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import VersionStatus
from controlplane.catalog.publishing import find_version, versions_of
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.versions import matches, parse_range, upgrade_refusal
from controlplane.db.engine import is_postgres
from controlplane.db.paging import DEFAULT_LIMIT, Page, datetime_key, paginate, uuid_key
from controlplane.db.types import utcnow
from controlplane.errors import Conflict, ControlPlaneError, ErrorItem, InvalidInput, NotFound
from controlplane.provisioning import instances
from controlplane.provisioning.admission import ParameterCheck
from controlplane.provisioning.fleet_models import (
    ACTIVE_RUN_STATUSES,
    FAILURE_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    FleetPlan,
    FleetPlanItem,
    FleetRun,
    FleetRunItem,
    ItemState,
    RunStatus,
)
from controlplane.provisioning.models import Instance, Phase, Target
from controlplane.provisioning.volumes import storage_floor
from controlplane.rendering.renderer import InstanceRef, Renderer, TenantRef
from controlplane.rendering.tls import TlsIssuer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.models import Tenant, TenantStatus

log = logging.getLogger(__name__)

#: Maintenance windows are local time in Flanders.
BRUSSELS = ZoneInfo("Europe/Brussels")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: A renderer for a target's Kubernetes minor version (the reconciler's cache, or a new one).
RendererFor = Callable[[str], Renderer]


# -- errors --------------------------------------------------------------------------------


class FleetPlanInvalid(InvalidInput):
    """The fleet plan request is not valid."""

    title = "Invalid fleet plan"
    code = "fleet_plan_invalid"


class FleetPlanNotFound(NotFound):
    """There is no such fleet plan."""

    title = "Fleet plan not found"
    code = "fleet_plan_not_found"


class FleetRunNotFound(NotFound):
    """There is no such fleet run."""

    title = "Fleet run not found"
    code = "fleet_run_not_found"


class FleetRunConflict(Conflict):
    """This fleet run cannot do that in its current state."""

    title = "Fleet run conflict"
    code = "fleet_run_conflict"


# -- maintenance windows -------------------------------------------------------------------


def _clock(text: str, location: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError) as exc:
        raise FleetPlanInvalid(
            f"Maintenance window time {text!r} is not HH:MM.",
            errors=[ErrorItem(location, "expected HH:MM, e.g. 22:00")],
        ) from exc


def window_open(window: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether ``now`` lies inside the maintenance window (Europe/Brussels).

    ``{}``/None = any time. ``days`` empty = every day. A window whose end is before its
    start runs past midnight and belongs to the day it starts (``sat 22:00-06:00`` includes
    Sunday 03:00); start equal to end means the whole day.
    """
    if not window:
        return True
    days = [str(d).lower()[:3] for d in window.get("days") or DAYS]
    start = _clock(str(window.get("start", "00:00")), "maintenance_window.start")
    end = _clock(str(window.get("end", "00:00")), "maintenance_window.end")
    local = now.astimezone(BRUSSELS)
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    moment = local.time().replace(second=0, microsecond=0)
    if start == end:
        return today in days
    if start < end:
        return today in days and start <= moment < end
    return (today in days and moment >= start) or (yesterday in days and moment < end)


def next_opening(window: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """When the window next opens (``now`` if open); None if it never does."""
    if window_open(window, now):
        return now
    assert window  # an empty window is always open
    days = [str(d).lower()[:3] for d in window.get("days") or DAYS]
    start = _clock(str(window.get("start", "00:00")), "maintenance_window.start")
    local = now.astimezone(BRUSSELS)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if DAYS[day.weekday()] not in days:
            continue
        opening = datetime.combine(day, start, tzinfo=BRUSSELS)
        if opening > local:
            return opening
    return None


# -- thresholds ----------------------------------------------------------------------------


def threshold_limit(threshold: str, total: int) -> int:
    """How many failures stop a run: ``"3"`` → 3, ``"10%"`` of 60 instances → 6 (at least 1)."""
    text = threshold.strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 < percent <= 100:
                raise ValueError(text)
            return max(1, math.ceil(total * percent / 100))
        count = int(text)
        if count < 1:
            raise ValueError(text)
        return count
    except ValueError as exc:
        raise FleetPlanInvalid(
            f"Failure threshold {threshold!r} is neither a count nor a percentage.",
            errors=[ErrorItem("failure_threshold", "expected e.g. 1, 3 or 10%")],
            hint="A count stops the run after that many failures; a percentage is of the "
            "plan's instances.",
        ) from exc


# -- plans ---------------------------------------------------------------------------------


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
                tenant=TenantRef(slug=tenant.slug, name=tenant.name, nis_code=tenant.nis_code),
                instance=InstanceRef(
                    name=instance.name,
                    id=str(instance.id),
                    namespace=instance.namespace,
                    hostname=instance.hostname,
                    credentials_rotation=instance.credentials_rotation,
                ),
                parameters=instance.parameters,
                storage_floor=floor,
                tls=TlsIssuer.from_config(target.config if target else None),
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


def get_plan(session: Session, plan_id: uuid.UUID) -> FleetPlan:
    plan = session.get(FleetPlan, plan_id)
    if plan is None:
        raise FleetPlanNotFound(
            f"There is no fleet plan {plan_id}.", hint="`cityctl fleet plans` lists them."
        )
    return plan


def plan_items(session: Session, plan: FleetPlan) -> list[FleetPlanItem]:
    return list(
        session.exec(
            select(FleetPlanItem)
            .where(FleetPlanItem.plan_id == plan.id)
            .order_by(col(FleetPlanItem.position))
        ).all()
    )


def list_newest[Row: (FleetPlan, FleetRun)](
    session: Session, model: type[Row], *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Row]:
    """One page of plans or runs, newest first (keyset pagination like every other list)."""
    keys = [
        datetime_key(col(model.created_at), "created_at", descending=True),
        uuid_key(col(model.id), descending=True),
    ]
    return paginate(session, select(model), keys, limit=limit, cursor=cursor)


def plan_item(session: Session, plan: FleetPlan, tenant: str, name: str) -> FleetPlanItem:
    item = session.exec(
        select(FleetPlanItem).where(
            FleetPlanItem.plan_id == plan.id,
            FleetPlanItem.tenant == tenant,
            FleetPlanItem.instance == name,
        )
    ).first()
    if item is None:
        raise instances.InstanceNotFound(
            f"Instance {tenant}/{name} is not part of fleet plan {plan.id}.",
            hint="Name an instance as <tenant>/<instance>; the plan lists its instances.",
        )
    return item


# -- runs: operator actions ---------------------------------------------------------------


def get_run(session: Session, run_id: uuid.UUID, *, lock: bool = False) -> FleetRun:
    statement = select(FleetRun).where(FleetRun.id == run_id)
    if lock and is_postgres(session.get_bind()):  # type: ignore[arg-type]
        statement = statement.with_for_update()
    run = session.exec(statement).first()
    if run is None:
        raise FleetRunNotFound(
            f"There is no fleet run {run_id}.", hint="`cityctl fleet runs` lists them."
        )
    return run


def run_items(session: Session, run: FleetRun) -> list[FleetRunItem]:
    return list(
        session.exec(
            select(FleetRunItem)
            .where(FleetRunItem.run_id == run.id)
            .order_by(col(FleetRunItem.position))
        ).all()
    )


def start_run(
    session: Session, *, plan: FleetPlan, context: AuditContext, now: datetime
) -> FleetRun:
    """Start executing a plan; one active run per service at a time."""
    items = plan_items(session, plan)
    if not items:
        raise FleetRunConflict(
            f"Fleet plan {plan.id} has no instances to upgrade.",
            hint="Make a new plan with another range or tenants.",
        )
    busy = session.exec(
        select(FleetRun)
        .join(FleetPlan, col(FleetPlan.id) == col(FleetRun.plan_id))
        .where(FleetPlan.service == plan.service, col(FleetRun.status).in_(ACTIVE_RUN_STATUSES))
    ).first()
    if busy is not None:
        raise FleetRunConflict(
            f"Fleet run {busy.id} of {plan.service} is still {busy.status}.",
            hint=f"Wait for it, or `cityctl fleet cancel {busy.id}`.",
        )
    run = FleetRun(plan_id=plan.id, started_by=context.actor, created_at=now, updated_at=now)
    session.add(run)
    session.flush()
    for item in items:
        session.add(
            FleetRunItem(
                run_id=run.id,
                instance_id=item.instance_id,
                tenant_id=item.tenant_id,
                tenant=item.tenant,
                instance=item.instance,
                position=item.position,
                wave=item.wave,
                from_version=item.from_version,
                to_version=plan.to_version,
            )
        )
    session.flush()
    audit.record(
        session,
        context,
        action="fleet.run.start",
        resource=f"fleet-run:{run.id}",
        details={"plan_id": str(plan.id), "service": plan.service, "instances": len(items)},
    )
    return run


def pause_run(session: Session, run: FleetRun, *, context: AuditContext, now: datetime) -> FleetRun:
    if run.status == RunStatus.PAUSED:
        return run
    if run.status != RunStatus.RUNNING:
        raise FleetRunConflict(f"Fleet run {run.id} is {run.status}; only a running run pauses.")
    return _operator_transition(session, run, RunStatus.PAUSED, "fleet.run.pause", context, now)


def resume_run(
    session: Session, run: FleetRun, *, context: AuditContext, now: datetime
) -> FleetRun:
    """Go on after a pause or a stop; failures so far no longer count toward the threshold."""
    if run.status == RunStatus.RUNNING:
        return run
    if run.status not in (RunStatus.PAUSED, RunStatus.STOPPED):
        raise FleetRunConflict(
            f"Fleet run {run.id} is {run.status}; only a paused or stopped run resumes."
        )
    items = run_items(session, run)
    run.failures_acknowledged = sum(1 for i in items if i.state in FAILURE_STATES)
    run.stop_reason = None
    return _operator_transition(session, run, RunStatus.RUNNING, "fleet.run.resume", context, now)


def cancel_run(
    session: Session, run: FleetRun, *, context: AuditContext, now: datetime
) -> FleetRun:
    """Start nothing new; in-flight upgrades and rollbacks finish (see :func:`tick`)."""
    if run.status in (RunStatus.CANCELLING, RunStatus.CANCELLED):
        return run
    if run.status not in ACTIVE_RUN_STATUSES:
        raise FleetRunConflict(f"Fleet run {run.id} already finished ({run.status}).")
    _operator_transition(session, run, RunStatus.CANCELLING, "fleet.run.cancel", context, now)
    _advance(session, run, now, check_parameters=None)
    return run


def _operator_transition(
    session: Session,
    run: FleetRun,
    status: RunStatus,
    action: str,
    context: AuditContext,
    now: datetime,
) -> FleetRun:
    before = run.status
    run.status = status
    run.updated_at = now
    session.add(run)
    session.flush()
    audit.record(
        session,
        context,
        action=action,
        resource=f"fleet-run:{run.id}",
        details={"from": str(before), "to": str(status)},
    )
    return run


# -- the executor --------------------------------------------------------------------------


def tick(session: Session, now: datetime, *, check_parameters: ParameterCheck) -> int:
    """Advance every active run one step; returns how many runs were looked at.

    On PostgreSQL each run row is locked with ``SKIP LOCKED``, so concurrent workers never
    advance the same run at once. Flushes; the caller commits.
    """
    statement = select(FleetRun).where(col(FleetRun.status).in_(ACTIVE_RUN_STATUSES))
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        statement = statement.with_for_update(skip_locked=True)
    runs = list(session.exec(statement.order_by(col(FleetRun.created_at))).all())
    for run in runs:
        _advance(session, run, now, check_parameters=check_parameters)
    return len(runs)


@dataclass
class _Step:
    """What one tick of one run needs."""

    session: Session
    run: FleetRun
    plan: FleetPlan
    now: datetime
    check: ParameterCheck | None
    context: AuditContext

    def audit(
        self,
        action: str,
        item: FleetRunItem | None = None,
        outcome: str = "success",
        **details: Any,
    ) -> None:
        resource = f"instance:{item.tenant}/{item.instance}" if item else f"fleet-run:{self.run.id}"
        audit.record(
            self.session,
            self.context,
            action=action,
            resource=resource,
            tenant_id=item.tenant_id if item else None,
            details={"run_id": str(self.run.id), **details},
            outcome=outcome,
        )


def _advance(
    session: Session, run: FleetRun, now: datetime, *, check_parameters: ParameterCheck | None
) -> None:
    plan = session.get(FleetPlan, run.plan_id)
    if plan is None:  # pragma: no cover - the foreign key prevents it
        return
    step = _Step(
        session=session,
        run=run,
        plan=plan,
        now=now,
        check=check_parameters,
        context=AuditContext(actor=f"fleet-run:{run.id}"[:200]),
    )
    items = run_items(session, run)
    # 1. Observe what is in flight (whatever the run's status: in-flight work always finishes).
    if check_parameters is not None:
        for item in items:
            if item.state in IN_FLIGHT_STATES:
                _observe(step, item)
    # 2. The threshold.
    failures = sum(1 for i in items if i.state in FAILURE_STATES)
    limit = threshold_limit(plan.failure_threshold, len(items))
    if run.status == RunStatus.RUNNING and failures - run.failures_acknowledged >= limit:
        run.status = RunStatus.STOPPED
        run.stop_reason = (
            f"{failures - run.failures_acknowledged} failure(s) reached the threshold "
            f"{plan.failure_threshold} ({limit}); failed instances are rolled back."
        )
        run.report = _report(run, plan, items, now)
        step.audit("fleet.run.stop", outcome="stopped", reason=run.stop_reason)
        log.warning("fleet run stopped", extra={"run_id": str(run.id), "failures": failures})
    # 3. Start what may start.
    if run.status == RunStatus.RUNNING and check_parameters is not None:
        _start_due(step, items)
    # 4. Cancel what has not started.
    if run.status == RunStatus.CANCELLING:
        for item in items:
            if item.state in (ItemState.PENDING, ItemState.SKIPPED_WINDOW):
                _finish(step, item, ItemState.CANCELLED, "Not started: the run was cancelled.")
        if not any(i.state in IN_FLIGHT_STATES for i in items):
            _close(step, items, RunStatus.CANCELLED)
    # 5. Done?
    elif all(i.state in FINAL_STATES for i in items):
        failed = any(i.state in FAILURE_STATES for i in items)
        _close(step, items, RunStatus.COMPLETED if failed else RunStatus.SUCCEEDED)
    run.updated_at = now
    session.add(run)
    session.flush()


def _close(step: _Step, items: list[FleetRunItem], status: RunStatus) -> None:
    run = step.run
    run.status = status
    run.finished_at = step.now
    run.report = _report(run, step.plan, items, step.now)
    step.audit("fleet.run.finish", status=str(status), counts=run.report["counts"])


def _start_due(step: _Step, items: list[FleetRunItem]) -> None:
    run, plan, now = step.run, step.plan, step.now
    last_wave = max(i.wave for i in items)
    while True:
        slots = plan.max_concurrency - sum(1 for i in items if i.state in IN_FLIGHT_STATES)
        wave_open = run.wave_not_before is None or now >= run.wave_not_before
        # Instances that waited for their window go first; then the current wave.
        waiting = [i for i in items if i.state == ItemState.SKIPPED_WINDOW and i.wave <= run.wave]
        pending = [i for i in items if i.state == ItemState.PENDING and i.wave == run.wave]
        for item in waiting + (pending if wave_open else []):
            if slots <= 0:
                break
            if _start(step, item):
                slots -= 1
        busy = any(
            i.wave == run.wave and i.state in (ItemState.PENDING, *IN_FLIGHT_STATES) for i in items
        )
        if busy or run.wave >= last_wave:
            return
        # The wave is through (instances waiting for their window do not hold it up).
        run.wave += 1
        run.wave_not_before = (
            now + timedelta(seconds=plan.pause_seconds) if plan.pause_seconds else None
        )
        step.audit(
            "fleet.wave.start",
            wave=run.wave,
            not_before=run.wave_not_before.isoformat() if run.wave_not_before else None,
        )


def _start(step: _Step, item: FleetRunItem) -> bool:
    """Record the upgrade of one instance; True when it is now in flight."""
    session, now = step.session, step.now
    instance = session.get(Instance, item.instance_id)
    if instance is None or instance.deleted_at is not None or instance.deletion_requested:
        _finish(step, item, ItemState.SKIPPED, "Skipped: the instance was deleted.")
        return False
    if instance.version != item.from_version:
        _finish(
            step,
            item,
            ItemState.SKIPPED,
            f"Skipped: the instance is on {instance.version} now, not {item.from_version} "
            "as planned.",
        )
        return False
    tenant = session.get(Tenant, item.tenant_id)
    assert tenant is not None
    if not step.plan.ignore_maintenance_windows and not window_open(tenant.maintenance_window, now):
        if item.state != ItemState.SKIPPED_WINDOW:
            opens = next_opening(tenant.maintenance_window, now)
            when = opens.strftime("%a %Y-%m-%d %H:%M") + " Europe/Brussels" if opens else "never"
            item.state = ItemState.SKIPPED_WINDOW
            item.message = f"Waiting for the tenant's maintenance window (opens {when})."
            session.add(item)
            step.audit("fleet.instance.wait_window", item, opens=when)
        return False
    if instance.phase not in SETTLED or instance.observed_generation != instance.generation:
        _finish(
            step,
            item,
            ItemState.SKIPPED,
            f"Skipped: the instance was not Ready before the upgrade ({instance.phase}); "
            "fix it first, then plan again.",
        )
        return False
    assert step.check is not None
    from_revision = instance.current_revision
    try:
        with session.begin_nested():
            change = instances.update_instance(
                session,
                tenant=tenant,
                instance=instance,
                version=item.to_version,
                check_parameters=step.check,
            )
    except ControlPlaneError as exc:
        _finish(step, item, ItemState.FAILED, f"Upgrade refused: {exc.detail}")
        return False
    item.state = ItemState.UPGRADING
    item.from_revision = from_revision
    item.generation = change.instance.generation
    item.started_at = now
    item.message = f"Upgrading {item.from_version} → {item.to_version}."
    session.add(item)
    step.audit(
        "fleet.instance.upgrade",
        item,
        service=instance.service,
        version=[item.from_version, item.to_version],
        generation=item.generation,
        wave=item.wave,
    )
    return True


#: The health gate's success: Ready, or Committed on a GitOps target that cannot observe
#: its cluster (the best such a target can say).
SETTLED = frozenset({Phase.READY, Phase.COMMITTED})


def _failure_of(instance: Instance) -> str | None:
    """Why the applied generation failed, if it did (None: not failed, maybe not done)."""
    if instance.observed_generation != instance.generation:
        return None
    if instance.phase == Phase.FAILED:
        return instance.message or "the instance failed"
    if instance.phase == Phase.DEGRADED:
        conditions = {c.get("type"): c for c in instance.conditions or []}
        ready = conditions.get("Ready") or {}
        applied = conditions.get("Applied") or {}
        if ready.get("reason") == "WorkloadsFailed" and applied.get("status") == "True":
            return str(ready.get("message") or "workloads failed")
    return None


def _observe(step: _Step, item: FleetRunItem) -> None:
    session, now, plan = step.session, step.now, step.plan
    instance = session.get(Instance, item.instance_id)
    rolling_back = item.state == ItemState.ROLLING_BACK
    if instance is None or instance.deleted_at is not None or instance.deletion_requested:
        _finish(step, item, ItemState.SKIPPED, "Skipped: the instance was deleted during the run.")
        return
    expected = item.from_version if rolling_back else item.to_version
    if instance.version != expected:
        _finish(
            step,
            item,
            ItemState.SKIPPED,
            f"Skipped: someone changed the instance to {instance.version} during the run.",
        )
        return
    settled = instance.observed_generation == instance.generation
    if settled and instance.phase in SETTLED:
        if rolling_back:
            _finish(
                step,
                item,
                ItemState.ROLLED_BACK,
                f"{item.message or 'Upgrade failed.'} Rolled back to {item.from_version}.",
            )
        else:
            done = f"Upgraded to {item.to_version}."
            if instance.phase == Phase.COMMITTED:
                done += " Committed: the target does not observe the cluster."
            _finish(step, item, ItemState.SUCCEEDED, done)
        return
    reason = _failure_of(instance)
    started = item.rollback_started_at if rolling_back else item.started_at
    timeout = timedelta(seconds=plan.instance_timeout_seconds)
    if reason is None and started is not None and now - started >= timeout:
        reason = (
            f"not Ready within {plan.instance_timeout_seconds}s "
            f"(phase {instance.phase}: {instance.message or 'no message'})"
        )
    if reason is None:
        return
    if rolling_back:
        _finish(step, item, ItemState.FAILED, f"Rollback did not complete: {reason}")
        return
    _rollback(step, item, instance, reason)


def _rollback(step: _Step, item: FleetRunItem, instance: Instance, reason: str) -> None:
    session = step.session
    tenant = session.get(Tenant, item.tenant_id)
    assert tenant is not None
    assert step.check is not None
    step.audit("fleet.instance.failed", item, outcome="failure", reason=reason[:500])
    if item.from_revision <= 0:
        _finish(step, item, ItemState.FAILED, f"Upgrade failed: {reason}; no earlier revision.")
        return
    try:
        with session.begin_nested():
            change = instances.rollback_instance(
                session,
                tenant=tenant,
                instance=instance,
                revision=item.from_revision,
                check_parameters=step.check,
            )
    except ControlPlaneError as exc:
        # A fleet never accepts data loss on the tenant's behalf: a rollback across
        # forward-only migrations (DataLossRefused) is left to a person, like any refusal.
        left = (
            f" Left for the operator: {exc.hint}."
            if isinstance(exc, instances.DataLossRefused)
            else ""
        )
        _finish(
            step,
            item,
            ItemState.FAILED,
            f"Upgrade failed: {reason}; the rollback was refused: {exc.detail}{left}",
        )
        return
    item.state = ItemState.ROLLING_BACK
    item.generation = change.instance.generation
    item.rollback_started_at = step.now
    item.message = f"Upgrade failed: {reason}."
    session.add(item)
    step.audit(
        "fleet.instance.rollback",
        item,
        revision=item.from_revision,
        version=[item.to_version, item.from_version],
        generation=item.generation,
    )


def _finish(step: _Step, item: FleetRunItem, state: ItemState, message: str) -> None:
    item.state = state
    item.message = message
    item.finished_at = step.now
    step.session.add(item)
    outcome = "failure" if state == ItemState.FAILED else "success"
    step.audit(f"fleet.instance.{state}", item, outcome=outcome, message=message[:500])


def counts(items: Sequence[FleetRunItem]) -> dict[str, int]:
    found = Counter(str(i.state) for i in items)
    return {str(state): found.get(str(state), 0) for state in ItemState}


def _report(
    run: FleetRun, plan: FleetPlan, items: Sequence[FleetRunItem], now: datetime
) -> dict[str, Any]:
    failures = [
        {
            "tenant": i.tenant,
            "instance": i.instance,
            "wave": i.wave,
            "state": str(i.state),
            "message": i.message,
        }
        for i in items
        if i.state in FAILURE_STATES
    ]
    total = len(items)
    return {
        "status": str(run.status),
        "at": now.isoformat(),
        "reason": run.stop_reason,
        "instances": total,
        "counts": counts(items),
        "failures": failures,
        "threshold": plan.failure_threshold,
        "threshold_failures": threshold_limit(plan.failure_threshold, total),
        "waves": (max(i.wave for i in items) + 1) if items else 0,
        "wave": run.wave,
    }


# -- adapter for the worker loop ------------------------------------------------------------


class FleetExecutor:
    """Runs :func:`tick` in its own transaction; what the reconcile worker calls."""

    def __init__(
        self,
        engine: Engine,
        *,
        check_parameters: ParameterCheck,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.check_parameters = check_parameters
        self.clock = clock

    def tick(self) -> int:
        with Session(self.engine, expire_on_commit=False) as session:
            looked_at = tick(session, self.clock(), check_parameters=self.check_parameters)
            session.commit()
        return looked_at
