"""What an operator does with runs: start a plan, pause, resume and cancel a run.

Pause and cancel never interrupt an instance half-way: in-flight upgrades (and rollbacks)
finish, nothing new starts; cancel marks the rest ``cancelled`` (on the old version), which
is why it advances the run once (:func:`executor.advance_run`). Resume goes on with the
instances not yet started; failures so far no longer count toward the threshold. Every
action writes an audit event; time is the ``now`` handed in.

This module must not know about HTTP, FastAPI, Typer or how the worker is scheduled.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.provisioning.fleet.errors import FleetRunConflict
from controlplane.provisioning.fleet.executor import advance_run
from controlplane.provisioning.fleet.models import (
    ACTIVE_RUN_STATUSES,
    FAILURE_STATES,
    FleetPlan,
    FleetRun,
    FleetRunItem,
    RunStatus,
)
from controlplane.provisioning.fleet.queries import plan_items, run_items


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
    advance_run(session, run, now, check_parameters=None)
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
