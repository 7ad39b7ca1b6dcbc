"""The fleet executor: advance every active run one step, level-based.

:func:`tick` looks at every active run, observes the instances in flight, decides, records
the next steps and returns; :class:`FleetExecutor` runs it in its own transaction and is
called periodically by the reconcile worker (``provisioning.worker``). All its memory is in
the database (:mod:`.models`), so a run survives a restart and any worker can go on.

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
- a paused or cancelling run starts nothing new; in-flight work always finishes.

Every step writes an audit event. Time is always the ``now`` handed in (or the injected
clock), never read here, so that tests control the clock.

This module must not know about HTTP, FastAPI, Typer, how plans are made, or how the worker
is scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.db.engine import is_postgres
from controlplane.db.types import utcnow
from controlplane.errors import ControlPlaneError
from controlplane.provisioning import instances
from controlplane.provisioning.admission import ParameterCheck
from controlplane.provisioning.fleet.models import (
    ACTIVE_RUN_STATUSES,
    FAILURE_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    FleetPlan,
    FleetRun,
    FleetRunItem,
    ItemState,
    RunStatus,
)
from controlplane.provisioning.fleet.queries import run_items
from controlplane.provisioning.fleet.reports import run_report
from controlplane.provisioning.fleet.thresholds import threshold_limit
from controlplane.provisioning.fleet.windows import next_opening, window_open
from controlplane.provisioning.models import Instance, Phase
from controlplane.tenants.models import Tenant

log = logging.getLogger(__name__)


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
        advance_run(session, run, now, check_parameters=check_parameters)
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


def advance_run(
    session: Session, run: FleetRun, now: datetime, *, check_parameters: ParameterCheck | None
) -> None:
    """Advance one run one step: observe, threshold, start, cancel, close (flushes).

    Without ``check_parameters`` nothing is observed or started (what a cancel needs).
    """
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
        run.report = run_report(run, plan, items, now)
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
    run.report = run_report(run, step.plan, items, step.now)
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
    if (
        instance is None
        or instance.deleted_at is not None
        or instance.deletion_requested
        or instance.purge_after is not None  # retained
    ):
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
    if (
        instance is None
        or instance.deleted_at is not None
        or instance.deletion_requested
        or instance.purge_after is not None  # retained
    ):
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
