"""The billing adapter: from the database to the billing domain and back.

It reads the usage events, the tenants' master data, the published plans (default prices and
the catalogue's shared costs) and finance's price entries and cost pools, builds the domain's
plain values (tenants by slug, instances by id) and computes, closes, reopens, estimates and
exports. A closed period always answers from its stored document (checked against its
digest), never from a new computation, so it does not change when prices or usage change
afterwards. Every write here is flushed, never committed: the caller commits once, with its
audit event, so that a refused request leaves nothing half-written.

The usage events table belongs to provisioning (which writes it). Billing and provisioning
are independent siblings (``.importlinter``), so billing reads the table through a narrow,
read-only column list instead of importing provisioning's model.

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import String, Uuid, column, select, table
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.closed_periods import closed_row
from controlplane.billing.errors import (
    CostPoolExists,
    CostPoolInvalid,
    InhabitantsMissing,
    PeriodAlreadyClosed,
    PeriodNotClosed,
    PlanUnknown,
    PriceExists,
    PriceInvalid,
    StatementDigestMismatch,
)
from controlplane.billing.estimates import Estimate, estimate_plan_cost
from controlplane.billing.invoices import issue_for_closing
from controlplane.billing.metering import group_by_instance, meter
from controlplane.billing.metering_store import load_measured, load_rates, with_storage
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
from controlplane.billing.money import CENT, cents_of
from controlplane.billing.periods import Period
from controlplane.billing.records import (
    ClosedSetStatus,
    ClosedStatementSet,
    CostPoolRecord,
    PriceRecord,
)
from controlplane.billing.sharing import Share
from controlplane.billing.statements import (
    LineKind,
    PoolAllocation,
    Reopening,
    SetStatus,
    Statement,
    StatementLine,
    StatementSet,
    Totals,
    close_period,
    compute_statements,
    reopen_period,
)
from controlplane.catalog.models import Plan, SharedCost
from controlplane.catalog.publishing import version_key
from controlplane.catalog.records import PublishedVersion
from controlplane.db.types import UTCDateTime, utcnow
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


# -- statements ----------------------------------------------------------------------------


def parse_period(text: str, now: datetime) -> Period:
    """``YYYY-MM``, refusing malformed months and months that have not started."""
    return Period.parse(text, now=now)


def trial_grace() -> timedelta:
    """The operator's trial grace (``CONTROLPLANE_BILLING_TRIAL_GRACE_HOURS``, default 24)."""
    return timedelta(hours=get_settings().billing_trial_grace_hours)


def compute(session: Session, period: Period, now: datetime) -> StatementSet:
    """The draft statements of ``period`` from the current data (month to date if running).

    Unit rates and measured usage (own module) are passed only when some rate exists, so a
    period without rates is computed (and digested) exactly as before metering.
    """
    inputs = load_inputs(session, period, now)
    rates = load_rates(session)
    events = inputs.events
    if rates.rates:
        events = with_storage(events, inputs.catalogue)
    return compute_statements(
        period=period,
        tenants=inputs.tenants,
        events=events,
        prices=inputs.prices,
        pools=inputs.pools,
        now=now,
        active_tenants=inputs.active,
        trial_grace=trial_grace(),
        rates=rates if rates.rates else None,
        measured=load_measured(session, period) if rates.rates else (),
    )


def statements(session: Session, period: Period, now: datetime) -> StatementSet:
    """The statements of ``period``: the stored closed set if it is closed, else a draft."""
    row = closed_row(session, period)
    if row is not None:
        return from_document(row.document)
    return compute(session, period, now)


def close(session: Session, period: Period, *, closed_by: str, now: datetime) -> StatementSet:
    """Compute, freeze and store ``period``'s statements (a second close is a conflict)."""
    existing = closed_row(session, period)
    if existing is not None:
        raise PeriodAlreadyClosed(
            detail=f"billing period {period} is already closed (digest {existing.digest}, "
            f"closed by {existing.closed_by} at {existing.closed_at.isoformat()})",
            hint=f"an operator can reopen it with a reason: cityctl billing reopen "
            f'{period} --reason "…"',
        )
    closed = close_period(compute(session, period, now), closed_by=closed_by, at=now)
    assert closed.digest is not None  # close_period always sets it
    session.add(
        ClosedStatementSet(
            period=str(period),
            status=ClosedSetStatus.CLOSED,
            digest=closed.digest,
            document=closed.as_dict(),
            total=closed.totals.total,
            closed_at=now,
            closed_by=closed_by,
        )
    )
    session.flush()
    # Invoices and credit notes are issued in the closing transaction (own module).
    issue_for_closing(session, closed, issued_by=closed_by)
    return closed


def reopen(
    session: Session, period: Period, *, reason: str, reopened_by: str, now: datetime
) -> Reopening:
    """Mark ``period``'s closed set reopened (the row and its document stay, for history)."""
    row = closed_row(session, period)
    if row is None:
        raise PeriodNotClosed(
            detail=f"billing period {period} is not closed; there is nothing to reopen",
            hint="only a closed period can be reopened",
        )
    reopening = reopen_period(
        from_document(row.document), reason=reason, reopened_by=reopened_by, at=now
    )
    row.status = ClosedSetStatus.REOPENED
    row.reopened_at = reopening.at
    row.reopened_by = reopening.reopened_by
    row.reopen_reason = reopening.reason
    session.add(row)
    session.flush()
    return reopening


def history(session: Session, period: Period) -> list[ClosedStatementSet]:
    """Every closing of ``period``, oldest first (reopened ones included)."""
    return list(
        session.exec(
            sm_select(ClosedStatementSet)
            .where(ClosedStatementSet.period == str(period))
            .order_by(col(ClosedStatementSet.closed_at))
        ).all()
    )


def scoped(statement_set: StatementSet, tenant: str) -> StatementSet:
    """Only ``tenant``'s statement and its own shares of the pools (what a tenant role sees)."""
    return replace(
        statement_set,
        statements=tuple(s for s in statement_set.statements if s.tenant.slug == tenant),
        pools=tuple(
            replace(a, shares=tuple(s for s in a.shares if s.tenant == tenant))
            for a in statement_set.pools
        ),
    )


# -- inhabitants needed up front ------------------------------------------------------------

_BY_INHABITANTS = (SharingKey.INHABITANTS, SharingKey.MIXED)


def running_services(session: Session, now: datetime) -> dict[str, set[str]]:
    """tenant slug -> the services it runs an instance of at ``now`` (from the usage events)."""
    slugs = {r.id: r.slug for r in session.exec(sm_select(Tenant)).all()}
    events = load_events(session, now, load_catalogue(session), slugs)
    result: dict[str, set[str]] = {}
    for items in group_by_instance(events).values():
        if items[-1].kind is not UsageKind.STOPPED:
            result.setdefault(items[-1].tenant, set()).add(items[-1].service)
    return result


def _pools_by_inhabitants(session: Session, now: datetime) -> list[CostPool]:
    period = Period.containing(now)
    pools = load_pools(session, period, load_catalogue(session))
    return [p for p in pools if p.key in _BY_INHABITANTS]


def check_inhabitants_kept(session: Session, tenant: Tenant, now: datetime) -> None:
    """Refuse to leave ``tenant`` without inhabitants while it takes part in such a pool.

    It takes part when it runs an instance of a service whose pool has an inhabitants or
    mixed key, or of any service when a platform pool has one.
    """
    services = running_services(session, now).get(tenant.slug, set())
    if not services:
        return
    needing = sorted(
        p.name
        for p in _pools_by_inhabitants(session, now)
        if p.kind is PoolKind.PLATFORM or p.service in services
    )
    if needing:
        raise InhabitantsMissing(
            detail=f"tenant {tenant.slug} runs instances shared by the cost pool(s) "
            f"{', '.join(needing)} by inhabitants; it cannot be left without inhabitants",
            errors=[
                ErrorItem(
                    "inhabitants",
                    "required while the tenant takes part in an inhabitants or mixed cost pool",
                )
            ],
            hint=f"cityctl tenant update {tenant.slug} --inhabitants N",
        )


def _check_pool_members_have_inhabitants(session: Session, pool: CostPool) -> None:
    if pool.key not in _BY_INHABITANTS:
        return
    # Who takes part: the tenants running the service now (service pool), or the active
    # tenants and every tenant running something (platform pool).
    rows = session.exec(sm_select(Tenant)).all()
    running = running_services(session, utcnow())
    if pool.kind is PoolKind.SERVICE:
        members = [r for r in rows if pool.service in running.get(r.slug, set())]
    else:
        members = [r for r in rows if r.status == TenantStatus.ACTIVE or r.slug in running]
    missing = sorted(r.slug for r in members if r.inhabitants is None)
    if missing:
        raise CostPoolInvalid(
            detail=f"cost pool {pool.name!r} shares by {pool.key_label}, but tenant(s) "
            f"{', '.join(missing)} taking part in it have no inhabitants",
            errors=[
                ErrorItem("key", f"needs the inhabitants of {', '.join(missing)}"),
            ],
            hint=f"cityctl tenant update {missing[0]} --inhabitants N (for each), "
            "or give the pool the equal or usage key",
        )


# -- estimates -----------------------------------------------------------------------------


def estimate(
    session: Session, *, tenant: Tenant, service: str, plan: str, now: datetime
) -> Estimate:
    """What one more ``service``/``plan`` would cost ``tenant`` per month.

    The reference month is the last complete one: its users and pools give the shares.
    """
    reference = Period.containing(now).previous
    inputs = load_inputs(session, reference, now)
    requests = plan_requests(inputs.catalogue.plan(service, plan))
    return estimate_plan_cost(
        tenant=tenant_info(tenant),
        service=service,
        plan=plan,
        reference_period=reference,
        tenants=inputs.tenants,
        events=inputs.events,
        prices=inputs.prices,
        pools=inputs.pools,
        now=now,
        active_tenants=inputs.active,
        cpu=requests[0],
        memory=requests[1],
        trial_grace=trial_grace(),
    )


# -- prices and pools ----------------------------------------------------------------------

#: The largest amount a money column holds (Numeric(12, 2)).
_MONEY_LIMIT = Decimal("9999999999.99")


def _check_storable(
    value: Decimal | None,
    *,
    what: str,
    location: str,
    limit: Decimal,
    error: type[PriceInvalid | CostPoolInvalid],
) -> None:
    """Refuse what the column would round or overflow, so that what is stored is what was sent."""
    if value is None:
        return
    if value != value.quantize(CENT):
        raise error(
            detail=f"{what} has more than two decimals ({value})",
            errors=[ErrorItem(location, "at most two decimals")],
            hint="give amounts in whole cents, e.g. 123.45",
        )
    if abs(value) > limit:
        raise error(
            detail=f"{what} ({value}) is larger than {limit}",
            errors=[ErrorItem(location, f"at most {limit}")],
        )


@dataclass(frozen=True, slots=True)
class PriceView:
    service: str
    plan: str
    monthly_price: Decimal
    effective_from: date | None
    source: str
    created_by: str | None = None
    created_at: datetime | None = None


def list_prices(session: Session) -> list[PriceView]:
    """The catalogue's prices (``source: catalogue``) and finance's dated prices."""
    catalogue = load_catalogue(session)
    views = [
        PriceView(service, name, plan.monthly_price, None, "catalogue")
        for (service, name), plan in catalogue.plans.items()
    ]
    views += [
        PriceView(
            r.service,
            r.plan,
            r.monthly_price,
            r.effective_from,
            "finance",
            r.created_by,
            r.created_at,
        )
        for r in session.exec(sm_select(PriceRecord)).all()
    ]
    views.sort(key=lambda v: (v.service, v.plan, v.effective_from or date.min))
    return views


def add_price(
    session: Session,
    *,
    service: str,
    plan: str,
    monthly_price: Decimal,
    effective_from: date,
    created_by: str,
) -> PriceRecord:
    entry = PriceEntry(service, plan, monthly_price, effective_from)  # refuses bad amounts
    _check_storable(
        entry.monthly_price,
        what=f"price of {service}/{plan} from {effective_from}",
        location="monthly_price",
        limit=_MONEY_LIMIT,
        error=PriceInvalid,
    )
    load_catalogue(session).plan(service, plan)
    clash = session.exec(
        sm_select(PriceRecord).where(
            PriceRecord.service == service,
            PriceRecord.plan == plan,
            PriceRecord.effective_from == effective_from,
        )
    ).first()
    if clash is not None:
        raise PriceExists(
            detail=f"{service}/{plan} already has a price from {effective_from} "
            f"({clash.monthly_price}, set by {clash.created_by})",
            hint="prices are never edited: add a price from another date",
        )
    record = PriceRecord(
        service=service,
        plan=plan,
        monthly_price=entry.monthly_price,
        effective_from=effective_from,
        created_by=created_by,
    )
    session.add(record)
    session.flush()
    return record


def list_pools(session: Session) -> list[CostPoolRecord]:
    return list(
        session.exec(
            sm_select(CostPoolRecord).order_by(
                col(CostPoolRecord.name), col(CostPoolRecord.effective_from)
            )
        ).all()
    )


def catalogue_pools(session: Session) -> list[CostPool]:
    """The catalogue's shared costs as pools (``<service>-shared``)."""
    catalogue = load_catalogue(session)
    return [
        CostPool.from_shared_cost(service, cost)
        for service, cost in sorted(catalogue.shared_costs.items())
    ]


def add_pool(
    session: Session,
    *,
    name: str,
    kind: str,
    monthly_amount: Decimal,
    key: str | None,
    effective_from: date,
    created_by: str,
    service: str | None = None,
    equal_percent: Decimal | None = None,
    usage_measure: str | None = None,
) -> CostPoolRecord:
    pool = CostPool(  # refuses a missing key, a negative amount, a mixed key without percent…
        name=name,
        kind=kind,  # type: ignore[arg-type]  # validated (and converted) by CostPool
        monthly_amount=monthly_amount,
        key=key,  # type: ignore[arg-type]
        service=service,
        equal_percent=equal_percent,
        usage_measure=usage_measure or UsageMeasure.INSTANCE_HOURS,  # type: ignore[arg-type]
    )
    _check_storable(
        pool.monthly_amount,
        what=f"cost pool {name!r}: monthly amount",
        location="monthly_amount",
        limit=_MONEY_LIMIT,
        error=CostPoolInvalid,
    )
    _check_storable(
        pool.equal_percent,
        what=f"cost pool {name!r}: equal_percent",
        location="equal_percent",
        limit=Decimal(100),
        error=CostPoolInvalid,
    )
    if effective_from.day == 1:
        _check_pool_members_have_inhabitants(session, pool)
    if effective_from.day != 1:
        raise CostPoolInvalid(
            detail=f"cost pool {name!r}: effective_from {effective_from} is not the first day "
            "of a month; pools change per billing period",
            errors=[ErrorItem("effective_from", "must be the first day of a month")],
            hint=f"use {effective_from.replace(day=1)} or the first of the next month",
        )
    if pool.service is not None:
        known = {s for s, _ in load_catalogue(session).plans}
        if pool.service not in known:
            raise CostPoolInvalid(
                detail=f"cost pool {name!r} names service {pool.service!r}, which is not in "
                "the published catalogue",
                errors=[ErrorItem("service", f"unknown service {pool.service!r}")],
                hint="use a published service name (cityctl catalog list)",
            )
    clash = session.exec(
        sm_select(CostPoolRecord).where(
            CostPoolRecord.name == name, CostPoolRecord.effective_from == effective_from
        )
    ).first()
    if clash is not None:
        raise CostPoolExists(
            detail=f"cost pool {name!r} already has an amount from {effective_from}",
            hint="pools are never edited: add the pool from another month",
        )
    record = CostPoolRecord(
        name=pool.name,
        kind=str(pool.kind),
        service=pool.service,
        monthly_amount=pool.monthly_amount,
        key=str(pool.key),
        equal_percent=pool.equal_percent,
        usage_measure=str(pool.usage_measure),
        effective_from=effective_from,
        created_by=created_by,
    )
    session.add(record)
    session.flush()
    return record


# -- the stored document back to a statement set -------------------------------------------


def from_document(document: dict[str, Any]) -> StatementSet:
    """Rebuild a closed :class:`StatementSet` from its stored JSON and check its digest.

    The digest covers the canonical JSON of the whole document, so a rebuilt set that verifies
    is exactly the one that was closed (and exports of it show exactly that).
    """
    try:
        result = StatementSet(
            period=Period.parse(document["period"]),
            status=SetStatus(document["status"]),
            computed_at=_datetime(document["computed_at"]),
            metered_until=_datetime(document["metered_until"]),
            statements=tuple(_statement(s) for s in document["statements"]),
            pools=tuple(_allocation(p) for p in document["pools"]),
            currency=document["currency"],
            closed_at=_optional_datetime(document.get("closed_at")),
            closed_by=document.get("closed_by"),
            digest=document.get("digest"),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise StatementDigestMismatch(
            detail=f"the stored statements of {document.get('period')} cannot be read: {exc}",
            hint="restore the closed statements from a backup; never edit them",
        ) from exc
    result.verify()
    return result


def _datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _optional_datetime(text: str | None) -> datetime | None:
    return None if text is None else _datetime(text)


def _statement(data: dict[str, Any]) -> Statement:
    totals = data["totals"]
    return Statement(
        tenant=TenantInfo(**data["tenant"]),
        lines=tuple(_line(line) for line in data["lines"]),
        totals=Totals(
            Decimal(totals["plan_fees"]),
            Decimal(totals["shared_services"]),
            Decimal(totals["platform"]),
            Decimal(totals.get("usage", "0.00")),
        ),
    )


def _line(data: dict[str, Any]) -> StatementLine:
    return StatementLine(
        kind=LineKind(data["kind"]),
        service=data["service"],
        instance_id=data["instance_id"],
        plan=data["plan"],
        pool=data["pool"],
        start=_optional_datetime(data["from"]),
        end=_optional_datetime(data["to"]),
        quantity=Decimal(data["quantity"]),
        unit=data["unit"],
        unit_price=Decimal(data["unit_price"]),
        amount=Decimal(data["amount"]),
        exact_share=Fraction(data["exact_share"]),
        flag=data.get("flag"),
        measure=data.get("measure"),
    )


def _allocation(data: dict[str, Any]) -> PoolAllocation:
    percent = data["equal_percent"]
    pool = CostPool(
        name=data["name"],
        kind=PoolKind(data["kind"]),
        monthly_amount=Decimal(data["monthly_amount"]),
        key=SharingKey(data["key"]),
        service=data["service"],
        equal_percent=None if percent is None else Decimal(percent),
        usage_measure=UsageMeasure(data["usage_measure"]),
    )
    return PoolAllocation(
        pool=pool,
        amount=Decimal(data["amount"]),
        shares=tuple(
            Share(
                tenant=s["tenant"],
                weight=Fraction(s["weight"]),
                share=Fraction(s["share"]),
                amount_cents=cents_of(Decimal(s["amount"])),
            )
            for s in data["shares"]
        ),
        note=data["note"],
    )
