"""Finance's prices and cost pool definitions: list and add (never edit), with their checks.

A price or a pool amount is an effective-dated row that is only ever added. A pool shared by
inhabitants needs the inhabitants of every tenant taking part in it, so this module also
refuses a tenant update that would leave such a member without inhabitants. Every write is
flushed, never committed: the caller commits once, with its audit event.

This module must not know about statements, closing periods, FastAPI or Typer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.errors import (
    CostPoolExists,
    CostPoolInvalid,
    InhabitantsMissing,
    PriceExists,
    PriceInvalid,
)
from controlplane.billing.inputs import load_catalogue, load_pools, running_services
from controlplane.billing.models import (
    CostPool,
    PoolKind,
    PriceEntry,
    SharingKey,
    UsageMeasure,
)
from controlplane.billing.money import CENT
from controlplane.billing.periods import Period
from controlplane.billing.records import (
    CostPoolRecord,
    PriceRecord,
)
from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem
from controlplane.tenants.models import Tenant, TenantStatus

# -- pools that share by inhabitants -------------------------------------------------------

_BY_INHABITANTS = (SharingKey.INHABITANTS, SharingKey.MIXED)


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
