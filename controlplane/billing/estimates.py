"""What a plan will cost a tenant per month, before it is provisioned.

The estimate replays a reference period (usually the last complete month) with one more
instance: the requested plan, running the whole month. It reports the plan fee, the tenant's
indicative share of the service's pools and of the platform pools given the current users, and
how much the tenant's monthly total would grow. It is indicative: the real shares depend on who
uses what in the month that is billed.

This module must not know about the database, FastAPI or Typer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from controlplane.billing.errors import InhabitantsMissing
from controlplane.billing.models import (
    CostPool,
    PriceList,
    TenantInfo,
    UsageEvent,
    UsageKind,
)
from controlplane.billing.periods import Period, require_aware
from controlplane.billing.statements import (
    DEFAULT_TRIAL_GRACE,
    LineKind,
    StatementSet,
    compute_statements,
)
from controlplane.errors import ErrorItem

_ESTIMATE_INSTANCE = "estimate"


@dataclass(frozen=True, slots=True)
class Estimate:
    """Indicative monthly cost of one more instance of ``service``/``plan`` for ``tenant``."""

    tenant: str
    service: str
    plan: str
    reference_period: Period
    plan_fee: Decimal
    service_share: Decimal
    platform_share: Decimal
    #: How much the tenant's monthly total grows (its pool shares may already be paid).
    additional: Decimal
    #: Tenants sharing the service's pools, and the platform pools, with this instance.
    service_members: int
    platform_members: int

    @property
    def monthly_total(self) -> Decimal:
        """The plan fee plus the tenant's shares of the service and platform pools."""
        return self.plan_fee + self.service_share + self.platform_share

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "service": self.service,
            "plan": self.plan,
            "reference_period": str(self.reference_period),
            "currency": "EUR",
            "plan_fee": str(self.plan_fee),
            "service_share": str(self.service_share),
            "platform_share": str(self.platform_share),
            "monthly_total": str(self.monthly_total),
            "additional": str(self.additional),
            "service_members": self.service_members,
            "platform_members": self.platform_members,
        }


def estimate_plan_cost(
    *,
    tenant: TenantInfo,
    service: str,
    plan: str,
    reference_period: Period,
    tenants: Iterable[TenantInfo],
    events: Iterable[UsageEvent],
    prices: PriceList,
    pools: Sequence[CostPool] = (),
    now: datetime,
    active_tenants: Collection[str] | None = None,
    cpu: Decimal | None = None,
    memory: Decimal | None = None,
    trial_grace: timedelta = DEFAULT_TRIAL_GRACE,
) -> Estimate:
    """Estimate the monthly cost of ``service``/``plan`` for ``tenant`` (see the module doc)."""
    now = require_aware(now, "now")
    reference_period.ensure_started(now)
    everyone = {t.slug: t for t in tenants}
    everyone[tenant.slug] = tenant
    current = list(events)
    hypothetical = UsageEvent(
        instance_id=_ESTIMATE_INSTANCE,
        tenant=tenant.slug,
        service=service,
        kind=UsageKind.STARTED,
        at=reference_period.start,
        plan=plan,
        cpu=cpu,
        memory=memory,
    )
    # Meter the whole reference month even if it is still running: an estimate is a projection.
    horizon = max(now, reference_period.end)
    active_with = None if active_tenants is None else {*active_tenants, tenant.slug}
    with_it = compute_statements(
        period=reference_period,
        tenants=everyone.values(),
        events=[*current, hypothetical],
        prices=prices,
        pools=pools,
        now=horizon,
        active_tenants=active_with,
        trial_grace=trial_grace,
    )
    without = compute_statements(
        period=reference_period,
        tenants=everyone.values(),
        events=current,
        prices=prices,
        pools=pools,
        now=horizon,
        active_tenants=active_tenants,
        trial_grace=trial_grace,
    )
    mine = with_it.statement(tenant.slug)
    if mine.flags:
        # Its own data is missing: an estimate without its share would be wrong, not lower.
        raise InhabitantsMissing(
            detail=f"tenant {tenant.slug} has no inhabitants, so its share of "
            + ", ".join(mine.flags)
            + " cannot be estimated",
            errors=[ErrorItem("inhabitants", "required by an inhabitants or mixed cost pool")],
            hint=f"cityctl tenant update {tenant.slug} --inhabitants N",
        )
    plan_fee = sum(
        (line.amount for line in mine.lines if line.instance_id == _ESTIMATE_INSTANCE),
        Decimal("0.00"),
    )
    service_share = sum(
        (
            line.amount
            for line in mine.lines
            if line.kind is LineKind.SHARED_SERVICE and line.service == service
        ),
        Decimal("0.00"),
    )
    platform_share = sum(
        (line.amount for line in mine.lines if line.kind is LineKind.PLATFORM), Decimal("0.00")
    )
    return Estimate(
        tenant=tenant.slug,
        service=service,
        plan=plan,
        reference_period=reference_period,
        plan_fee=plan_fee,
        service_share=service_share,
        platform_share=platform_share,
        additional=mine.total - _total(without, tenant.slug),
        service_members=_members(with_it, service),
        platform_members=max(
            (len(a.shares) for a in with_it.pools if a.pool.service is None), default=0
        ),
    )


def _total(statements: StatementSet, tenant: str) -> Decimal:
    for statement in statements.statements:
        if statement.tenant.slug == tenant:
            return statement.total
    return Decimal("0.00")


def _members(statements: StatementSet, service: str) -> int:
    return max((len(a.shares) for a in statements.pools if a.pool.service == service), default=0)
