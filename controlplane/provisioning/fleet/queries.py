"""Reading fleet plans and runs: one by id, their items, pages of them (newest first).

This module must not know about how plans are made or runs advanced, nor about HTTP.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from controlplane.db.engine import is_postgres
from controlplane.db.paging import DEFAULT_LIMIT, Page, datetime_key, paginate, uuid_key
from controlplane.provisioning import instances
from controlplane.provisioning.fleet.errors import FleetPlanNotFound, FleetRunNotFound
from controlplane.provisioning.fleet.models import FleetPlan, FleetPlanItem, FleetRun, FleetRunItem


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
