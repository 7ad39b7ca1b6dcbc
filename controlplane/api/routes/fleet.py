"""``/api/v1/fleet``: plan, preview and run fleet upgrades (operators only).

Plans are computed and stored at once (``201``); a run is recorded at once (``201``) and
advanced by the worker's fleet executor (docs/fleet.md), so ``GET /runs/{id}`` is the way
to follow it. Pause, resume and cancel answer the run as it is after the change.
"""

from __future__ import annotations

import uuid
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from sqlmodel import Session

from controlplane.api import fleet_schemas as wire
from controlplane.api import schemas
from controlplane.api.deps import (
    AuditDep,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    SessionDep,
    preview_renderers,
)
from controlplane.api.routes.common import PROBLEMS
from controlplane.auth.policy import Action
from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem, InvalidInput
from controlplane.provisioning import fleet
from controlplane.provisioning.fleet.models import (
    FAILURE_STATES,
    FleetPlan,
    FleetPlanItem,
    FleetRun,
)
from controlplane.provisioning.instances import instance_by_id

router = APIRouter(prefix="/api/v1/fleet", tags=["fleet"], responses=PROBLEMS)


def _plan_public(session: Session, plan: FleetPlan) -> wire.FleetPlanPublic:
    items = fleet.plan_items(session, plan)
    return wire.FleetPlanPublic(
        id=plan.id,
        service=plan.service,
        from_=plan.from_range,
        to=plan.to_version,
        tenants=plan.tenants,
        wave_size=plan.wave_size,
        max_concurrency=plan.max_concurrency,
        pause_seconds=plan.pause_seconds,
        failure_threshold=plan.failure_threshold,
        ignore_maintenance_windows=plan.ignore_maintenance_windows,
        instance_timeout_seconds=plan.instance_timeout_seconds,
        waves=(max(i.wave for i in items) + 1) if items else 0,
        created_by=plan.created_by,
        created_at=plan.created_at,
        items=[_plan_item(i) for i in items],
        excluded=[wire.ExcludedInstance.model_validate(e) for e in plan.excluded],
    )


def _plan_summary(session: Session, plan: FleetPlan) -> wire.FleetPlanSummary:
    return wire.FleetPlanSummary(
        id=plan.id,
        service=plan.service,
        from_=plan.from_range,
        to=plan.to_version,
        instances=len(fleet.plan_items(session, plan)),
        created_by=plan.created_by,
        created_at=plan.created_at,
    )


def _plan_item(item: FleetPlanItem) -> wire.FleetPlanItemPublic:
    return wire.FleetPlanItemPublic(
        tenant=item.tenant,
        instance=item.instance,
        instance_id=item.instance_id,
        wave=item.wave,
        from_version=item.from_version,
        changes=wire.ObjectChanges.model_validate(item.changes),
    )


def _run_summary(run: FleetRun) -> wire.FleetRunSummary:
    return wire.FleetRunSummary(
        id=run.id,
        plan_id=run.plan_id,
        status=cast(wire.RunStatusName, str(run.status)),
        wave=run.wave,
        started_by=run.started_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


def _run_public(session: Session, run: FleetRun) -> wire.FleetRunPublic:
    plan = fleet.get_plan(session, run.plan_id)
    items = fleet.run_items(session, run)
    waves: dict[int, list[wire.FleetRunItemPublic]] = {}
    for item in items:
        waves.setdefault(item.wave, []).append(
            wire.FleetRunItemPublic(
                tenant=item.tenant,
                instance=item.instance,
                instance_id=item.instance_id,
                wave=item.wave,
                state=cast(wire.ItemStateName, str(item.state)),
                from_version=item.from_version,
                to_version=item.to_version,
                started_at=item.started_at,
                finished_at=item.finished_at,
                message=item.message,
            )
        )
    failures = sum(1 for i in items if i.state in FAILURE_STATES)
    return wire.FleetRunPublic(
        id=run.id,
        plan_id=run.plan_id,
        service=plan.service,
        to=plan.to_version,
        status=cast(wire.RunStatusName, str(run.status)),
        wave=run.wave,
        wave_not_before=run.wave_not_before,
        failures=failures - run.failures_acknowledged,
        failure_limit=fleet.threshold_limit(plan.failure_threshold, len(items)),
        stop_reason=run.stop_reason,
        counts=fleet.counts(items),
        waves=[
            wire.FleetWave(
                wave=n,
                counts={
                    k: v for k, v in fleet.counts([i for i in items if i.wave == n]).items() if v
                },
                items=rows,
            )
            for n, rows in sorted(waves.items())
        ],
        report=run.report,
        started_by=run.started_by,
        created_at=run.created_at,
        updated_at=run.updated_at,
        finished_at=run.finished_at,
    )


@router.post("/plans", status_code=201, response_model=wire.FleetPlanPublic)
def create_plan(
    body: wire.FleetPlanCreate,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> wire.FleetPlanPublic:
    """Select the instances and preview, for each, the objects the upgrade would change."""
    principal.check(Action.FLEET_WRITE)
    plan = fleet.create_plan(
        session,
        request=fleet.PlanRequest(
            service=body.service,
            from_range=body.from_,
            to_version=body.to,
            tenants=body.tenants,
            wave_size=body.wave_size,
            max_concurrency=body.max_concurrency,
            pause_seconds=body.pause_seconds,
            failure_threshold=str(body.failure_threshold),
            ignore_maintenance_windows=body.ignore_maintenance_windows,
            instance_timeout_seconds=body.instance_timeout_seconds,
        ),
        renderer_for=preview_renderers(request),
        context=context,
    )
    session.commit()
    return _plan_public(session, plan)


@router.get("/plans", response_model=schemas.Page[wire.FleetPlanSummary])
def list_plans(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[wire.FleetPlanSummary]:
    """Newest first, one page at a time (``next_cursor``)."""
    principal.check(Action.FLEET_READ)
    page = fleet.list_newest(session, FleetPlan, limit=limit, cursor=cursor)
    items = [_plan_summary(session, p) for p in page.items]
    return schemas.Page(items=items, next_cursor=page.next_cursor)


@router.get("/plans/{plan_id}", response_model=wire.FleetPlanPublic)
def show_plan(
    plan_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> wire.FleetPlanPublic:
    principal.check(Action.FLEET_READ)
    return _plan_public(session, fleet.get_plan(session, plan_id))


@router.get("/plans/{plan_id}/preview", response_model=wire.FleetPreview)
def preview(
    plan_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    instance: Annotated[
        str,
        Query(
            max_length=90,
            pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
            description="The instance as `<tenant>/<instance>`.",
        ),
    ],
) -> wire.FleetPreview:
    """The exact objects one instance's upgrade would add, change and remove (rendered now)."""
    principal.check(Action.FLEET_READ)
    plan = fleet.get_plan(session, plan_id)
    tenant, _, name = instance.partition("/")
    item = fleet.plan_item(session, plan, tenant, name)
    row = instance_by_id(session, item.instance_id)
    if row is None or row.deleted_at is not None:
        raise InvalidInput(
            f"Instance {instance} no longer exists.",
            errors=[ErrorItem("instance", "deleted since the plan was made")],
        )
    changes = fleet.preview_instance(
        session, row, plan.to_version, renderer_for=preview_renderers(request)
    )
    return wire.FleetPreview(
        tenant=tenant,
        instance=name,
        from_version=row.version,
        to_version=plan.to_version,
        changes=wire.ObjectChanges(**changes.as_dict()),
    )


@router.post("/runs", status_code=201, response_model=wire.FleetRunPublic)
def start_run(
    body: wire.FleetRunCreate, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> wire.FleetRunPublic:
    """Start executing a plan; the worker's fleet executor carries it out."""
    principal.check(Action.FLEET_WRITE)
    plan = fleet.get_plan(session, body.plan_id)
    run = fleet.start_run(session, plan=plan, context=context, now=utcnow())
    session.commit()
    return _run_public(session, run)


@router.get("/runs", response_model=schemas.Page[wire.FleetRunSummary])
def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[wire.FleetRunSummary]:
    """Newest first, one page at a time (``next_cursor``)."""
    principal.check(Action.FLEET_READ)
    page = fleet.list_newest(session, FleetRun, limit=limit, cursor=cursor)
    items = [_run_summary(r) for r in page.items]
    return schemas.Page(items=items, next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", response_model=wire.FleetRunPublic)
def show_run(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> wire.FleetRunPublic:
    """Status per wave and per instance; the report once the run stopped or ended."""
    principal.check(Action.FLEET_READ)
    return _run_public(session, fleet.get_run(session, run_id))


def _act(
    action: str, run_id: uuid.UUID, session: Session, principal: PrincipalDep, context: AuditDep
) -> wire.FleetRunPublic:
    principal.check(Action.FLEET_WRITE)
    run = fleet.get_run(session, run_id, lock=True)
    operation = {"pause": fleet.pause_run, "resume": fleet.resume_run, "cancel": fleet.cancel_run}
    operation[action](session, run, context=context, now=utcnow())
    session.commit()
    return _run_public(session, run)


@router.post("/runs/{run_id}/pause", response_model=wire.FleetRunPublic)
def pause_run(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> wire.FleetRunPublic:
    """Start nothing new; in-flight upgrades finish."""
    return _act("pause", run_id, session, principal, context)


@router.post("/runs/{run_id}/resume", response_model=wire.FleetRunPublic)
def resume_run(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> wire.FleetRunPublic:
    """Go on after a pause or a stop (failures so far no longer count toward the threshold)."""
    return _act("resume", run_id, session, principal, context)


@router.post("/runs/{run_id}/cancel", response_model=wire.FleetRunPublic)
def cancel_run(
    run_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> wire.FleetRunPublic:
    """Start nothing new; in-flight upgrades and rollbacks finish, the rest stays as it is."""
    return _act("cancel", run_id, session, principal, context)
