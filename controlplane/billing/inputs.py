"""What a statement needs, read from the database: the billing domain's plain input values.

It reads the usage events, the tenants' master data, the published plans (default prices and
the catalogue's shared costs) and finance's price entries and cost pools, and builds the
domain's values (tenants by slug, usage events, price list, pools of a period).

The usage events table belongs to provisioning (which writes it). Billing and provisioning
are independent siblings (``.importlinter``), so billing reads the table through a narrow,
read-only column list instead of importing provisioning's model.

This module only reads: it must not know about closing periods, statements as stored,
writing prices or pools, FastAPI or Typer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Uuid, column, select, table
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.errors import (
    PlanUnknown,
)
from controlplane.billing.metering import group_by_instance, meter
from controlplane.billing.models import (
    CostPool,
    PoolKind,
    PriceEntry,
    PriceList,
    SharingKey,
    TenantInfo,
    UsageEvent,
    UsageKind,
    UsageMeasure,
    plan_requests,
)
from controlplane.billing.periods import Period
from controlplane.billing.records import (
    CostPoolRecord,
    PriceRecord,
)
from controlplane.catalog.models import Plan, SharedCost
from controlplane.catalog.publishing import version_key
from controlplane.catalog.records import PublishedVersion
from controlplane.db.types import UTCDateTime
from controlplane.errors import ErrorItem
from controlplane.settings import get_settings
from controlplane.tenants.models import Tenant, TenantStatus

# Read-only view of provisioning's usage_events table (see the module docstring).
_USAGE = table(
    "usage_events",
    column("instance_id", Uuid()),
    column("tenant_id", Uuid()),
    column("service", String()),
    column("plan", String()),
    column("kind", String()),
    column("at", UTCDateTime()),
)


# -- reading the inputs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What billing needs of the published catalogue: plans and shared costs per service.

    A plan's price and requests come from the newest published version that has the plan;
    a service's shared cost from its newest published version.
    """

    plans: dict[tuple[str, str], Plan]
    shared_costs: dict[str, SharedCost]

    def plan(self, service: str, plan: str) -> Plan:
        found = self.plans.get((service, plan))
        if found is None:
            known = sorted(p for s, p in self.plans if s == service)
            raise PlanUnknown(
                detail=f"{service}/{plan} is not a plan of the published catalogue",
                errors=[
                    ErrorItem(
                        "service" if not known else "plan",
                        f"unknown service {service!r}"
                        if not known
                        else f"service {service} has the plans: {', '.join(known)}",
                    )
                ],
                hint="use `cityctl catalog list` to see the services and their plans",
            )
        return found


def load_catalogue(session: Session) -> Catalogue:
    rows = session.exec(sm_select(PublishedVersion)).all()
    rows = sorted(rows, key=lambda r: (r.service, version_key(r.version)), reverse=True)
    plans: dict[tuple[str, str], Plan] = {}
    shared: dict[str, SharedCost] = {}
    newest_seen: set[str] = set()
    for row in rows:
        release = row.to_release()
        if row.service not in newest_seen:
            newest_seen.add(row.service)
            if release.shared_cost is not None:
                shared[row.service] = release.shared_cost
        for plan in release.plans:
            plans.setdefault((row.service, plan.name), plan)
    return Catalogue(plans=plans, shared_costs=shared)


def tenant_info(row: Tenant) -> TenantInfo:
    return TenantInfo(
        slug=row.slug,
        name=row.name,
        nis_code=row.nis_code,
        inhabitants=row.inhabitants,
        inhabitants_year=row.inhabitants_year,
        enterprise_number=row.enterprise_number,
        group=row.group,
    )


def load_prices(session: Session, catalogue: Catalogue) -> PriceList:
    """The catalogue's plan prices (since always) with finance's dated prices on top."""
    defaults = [
        PriceEntry(service, plan_name, plan.monthly_price)
        for (service, plan_name), plan in catalogue.plans.items()
    ]
    dated = [
        PriceEntry(r.service, r.plan, r.monthly_price, r.effective_from)
        for r in session.exec(sm_select(PriceRecord)).all()
    ]
    return PriceList(tuple(defaults + dated))


def pool_of(record: CostPoolRecord) -> CostPool:
    return CostPool(
        name=record.name,
        kind=PoolKind(record.kind),
        monthly_amount=record.monthly_amount,
        key=SharingKey(record.key),
        service=record.service,
        equal_percent=record.equal_percent,
        usage_measure=UsageMeasure(record.usage_measure),
    )


def load_pools(session: Session, period: Period, catalogue: Catalogue) -> list[CostPool]:
    """The pools of ``period``: finance's (latest row per name) and the catalogue's shared costs.

    A finance pool named like a catalogue pool (``<service>-shared``) replaces it; a pool whose
    amount is 0.00 from some month on is ended from that month.
    """
    rows = session.exec(
        sm_select(CostPoolRecord).where(col(CostPoolRecord.effective_from) <= period.first_day)
    ).all()
    latest: dict[str, CostPoolRecord] = {}
    for row in rows:
        current = latest.get(row.name)
        if current is None or row.effective_from > current.effective_from:
            latest[row.name] = row
    pools = [pool_of(r) for r in latest.values() if r.monthly_amount > 0]
    for service, cost in sorted(catalogue.shared_costs.items()):
        pool = CostPool.from_shared_cost(service, cost)
        if pool.name not in latest and pool.monthly_amount > 0:
            pools.append(pool)
    return pools


def load_events(
    session: Session, until: datetime, catalogue: Catalogue, slugs: dict[uuid.UUID, str]
) -> list[UsageEvent]:
    """Every usage event before ``until`` (earlier events say what was running at the start)."""
    rows = session.execute(
        select(_USAGE).where(_USAGE.c.at < until).order_by(_USAGE.c.at, _USAGE.c.instance_id)
    ).all()
    events: list[UsageEvent] = []
    for row in rows:
        plan = catalogue.plans.get((row.service, row.plan))
        cpu, memory = plan_requests(plan) if plan is not None else (None, None)
        events.append(
            UsageEvent(
                instance_id=str(row.instance_id),
                tenant=slugs[row.tenant_id],
                service=row.service,
                kind=UsageKind(row.kind),
                at=row.at,
                plan=row.plan,
                cpu=cpu,
                memory=memory,
            )
        )
    return events


@dataclass(frozen=True, slots=True)
class Inputs:
    tenants: list[TenantInfo]
    events: list[UsageEvent]
    prices: PriceList
    pools: list[CostPool]
    active: set[str]
    catalogue: Catalogue


def load_inputs(session: Session, period: Period, now: datetime) -> Inputs:
    """Everything the domain needs to compute ``period`` as of ``now``.

    Platform pools are shared by the tenants that are active (status ``active``, onboarded
    before the period ended) and by every tenant that had usage in the period.
    """
    catalogue = load_catalogue(session)
    rows = session.exec(sm_select(Tenant)).all()
    slugs = {r.id: r.slug for r in rows}
    until = min(period.end, now)
    events = load_events(session, until, catalogue, slugs)
    used = {interval.tenant for interval in meter(events, period, until=until)}
    active = {
        r.slug for r in rows if r.status == TenantStatus.ACTIVE and r.created_at < period.end
    } | used
    return Inputs(
        tenants=[tenant_info(r) for r in rows],
        events=events,
        prices=load_prices(session, catalogue),
        pools=load_pools(session, period, catalogue),
        active=active,
        catalogue=catalogue,
    )


def trial_grace() -> timedelta:
    """The operator's trial grace (``CONTROLPLANE_BILLING_TRIAL_GRACE_HOURS``, default 24)."""
    return timedelta(hours=get_settings().billing_trial_grace_hours)


def running_services(session: Session, now: datetime) -> dict[str, set[str]]:
    """tenant slug -> the services it runs an instance of at ``now`` (from the usage events)."""
    slugs = {r.id: r.slug for r in session.exec(sm_select(Tenant)).all()}
    events = load_events(session, now, load_catalogue(session), slugs)
    result: dict[str, set[str]] = {}
    for items in group_by_instance(events).values():
        if items[-1].kind not in (UsageKind.STOPPED, UsageKind.RETAINED):
            result.setdefault(items[-1].tenant, set()).add(items[-1].service)
    return result
