"""Small builders for billing tests (plain values, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from controlplane.billing import (
    CostPool,
    PoolKind,
    PriceEntry,
    PriceList,
    SharingKey,
    TenantInfo,
    UsageEvent,
    UsageKind,
)
from controlplane.billing.periods import BRUSSELS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tenant(slug: str, nis: str, inhabitants: int | None = 10_000) -> TenantInfo:
    return TenantInfo(slug=slug, name=slug.title(), nis_code=nis, inhabitants=inhabitants)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Brussels wall-clock time as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=BRUSSELS).astimezone(UTC)


def started(
    instance: str,
    tenant_slug: str,
    at: datetime,
    plan: str = "small",
    service: str = "forms",
    cpu: Decimal | None = None,
    memory: Decimal | None = None,
) -> UsageEvent:
    return UsageEvent(instance, tenant_slug, service, UsageKind.STARTED, at, plan, cpu, memory)


def changed(
    instance: str, tenant_slug: str, at: datetime, plan: str, service: str = "forms"
) -> UsageEvent:
    return UsageEvent(instance, tenant_slug, service, UsageKind.PLAN_CHANGED, at, plan)


def stopped(instance: str, tenant_slug: str, at: datetime, service: str = "forms") -> UsageEvent:
    return UsageEvent(instance, tenant_slug, service, UsageKind.STOPPED, at)


def prices(**plans: str) -> PriceList:
    """Undated prices of service ``forms``: ``prices(small="100.00", large="300.00")``."""
    return PriceList(tuple(PriceEntry("forms", plan, Decimal(p)) for plan, p in plans.items()))


def pool(
    name: str,
    amount: str,
    key: SharingKey,
    *,
    service: str | None = None,
    equal_percent: str | None = None,
) -> CostPool:
    return CostPool(
        name=name,
        kind=PoolKind.SERVICE if service else PoolKind.PLATFORM,
        service=service,
        monthly_amount=Decimal(amount),
        key=key,
        equal_percent=None if equal_percent is None else Decimal(equal_percent),
    )
