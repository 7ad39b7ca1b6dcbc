"""Test data for billing: the Flemish municipalities as tenants and a synthetic fleet.

The municipalities (NIS code, name, inhabitants) come from the Statbel extract shipped in
controlplane/tenants/data.
Source: Statbel, CC BY 4.0.
"""

from __future__ import annotations

import csv
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from controlplane.billing import (
    CostPool,
    Period,
    PoolKind,
    PriceEntry,
    PriceList,
    SharingKey,
    TenantInfo,
    UsageEvent,
    UsageKind,
    UsageMeasure,
)
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV

MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def flemish_tenants() -> list[TenantInfo]:
    """All 285 Flemish municipalities as billing tenants (Source: Statbel, CC BY 4.0)."""
    with MUNICIPALITIES.open(encoding="utf-8") as handle:
        return [
            TenantInfo(
                slug=slugify(row["name_nl"]),
                name=row["name_nl"],
                nis_code=row["nis_code"],
                inhabitants=int(row["population"]),
                inhabitants_year=int(row["population_year"]),
            )
            for row in csv.DictReader(handle)
        ]


SERVICES = (
    "open-formulieren",
    "open-zaak",
    "signalen",
    "decidim",
    "ckan",
    "keycloak",
    "nextcloud",
    "matomo",
)
PLANS = {"small": Decimal("95.00"), "medium": Decimal("190.00"), "large": Decimal("380.00")}
REQUESTS = {
    "small": (Decimal("0.5"), Decimal(1)),
    "medium": (Decimal(1), Decimal(2)),
    "large": (Decimal(2), Decimal(4)),
}


@dataclass(frozen=True)
class Fleet:
    tenants: list[TenantInfo]
    events: list[UsageEvent]
    prices: PriceList
    pools: list[CostPool]


def fleet_prices() -> PriceList:
    return PriceList(
        tuple(
            PriceEntry(service, plan, price)
            for service in SERVICES
            for plan, price in PLANS.items()
        )
    )


def fleet_pools() -> list[CostPool]:
    keys = [
        (SharingKey.EQUAL, None, UsageMeasure.INSTANCE_HOURS),
        (SharingKey.INHABITANTS, None, UsageMeasure.INSTANCE_HOURS),
        (SharingKey.USAGE, None, UsageMeasure.INSTANCE_HOURS),
        (SharingKey.USAGE, None, UsageMeasure.CPU_HOURS),
        (SharingKey.MIXED, Decimal(30), UsageMeasure.INSTANCE_HOURS),
        (SharingKey.USAGE, None, UsageMeasure.MEMORY_HOURS),
        (SharingKey.EQUAL, None, UsageMeasure.INSTANCE_HOURS),
        (SharingKey.MIXED, Decimal(50), UsageMeasure.INSTANCE_HOURS),
    ]
    pools = [
        CostPool(
            name=f"{service}-shared",
            kind=PoolKind.SERVICE,
            service=service,
            monthly_amount=Decimal("12345.67"),
            key=key,
            equal_percent=percent,
            usage_measure=measure,
        )
        for service, (key, percent, measure) in zip(SERVICES, keys, strict=True)
    ]
    pools.append(
        CostPool(
            name="platform",
            kind=PoolKind.PLATFORM,
            monthly_amount=Decimal("98765.43"),
            key=SharingKey.MIXED,
            equal_percent=Decimal(40),
        )
    )
    return pools


def _event(
    instance: str, tenant: str, service: str, kind: UsageKind, at: datetime, plan: str | None
) -> UsageEvent:
    cpu, memory = REQUESTS[plan] if plan else (None, None)
    return UsageEvent(instance, tenant, service, kind, at, plan, cpu, memory)


def flemish_fleet(
    *, year: int = 2024, instances_per_tenant: int = 8, change_ratio: float = 0.10, seed: int = 6
) -> Fleet:
    """Every municipality with ``instances_per_tenant`` instances started before ``year``; each
    month a ``change_ratio`` of the instances changes plan at a random moment, and a few stop
    and start again."""
    rng = random.Random(seed)
    tenants = flemish_tenants()
    events: list[UsageEvent] = []
    plans = list(PLANS)
    current: dict[str, str] = {}
    owner: dict[str, tuple[str, str]] = {}
    before = Period(year, 1).start - timedelta(days=20)
    for tenant in tenants:
        for n in range(instances_per_tenant):
            instance = f"{tenant.slug}-{n}"
            service = SERVICES[n % len(SERVICES)]
            plan = rng.choice(plans)
            current[instance] = plan
            owner[instance] = (tenant.slug, service)
            events.append(_event(instance, tenant.slug, service, UsageKind.STARTED, before, plan))
    instances = sorted(current)
    for month in range(1, 13):
        period = Period(year, month)
        length = int((period.end - period.start).total_seconds())
        for instance in rng.sample(instances, round(len(instances) * change_ratio)):
            tenant_slug, service = owner[instance]
            plan = rng.choice([p for p in plans if p != current[instance]])
            current[instance] = plan
            at = period.start + timedelta(seconds=rng.randrange(length))
            events.append(_event(instance, tenant_slug, service, UsageKind.PLAN_CHANGED, at, plan))
    return Fleet(tenants, events, fleet_prices(), fleet_pools())


NOW = datetime(2026, 1, 1, tzinfo=UTC)
