"""The worked example of docs/billing.md, asserted to the cent.

Three municipalities of Oost-Vlaanderen (NIS codes and inhabitants from the Statbel extract;
Source: Statbel, CC BY 4.0), one shared service, a platform pool with a mixed key, plan fees
with a plan change and a price change inside April 2024. The expected figures are the ones
worked out by hand in the document.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from fractions import Fraction

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
    close_period,
    compute_statements,
)
from tests.billing.builders import NOW, local
from tests.billing.fleet import MUNICIPALITIES

SERVICE = "open-formulieren"


def municipality(nis_code: str, slug: str) -> TenantInfo:
    with MUNICIPALITIES.open(encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["nis_code"] == nis_code)
    return TenantInfo(
        slug=slug,
        name=row["name_nl"],
        nis_code=nis_code,
        inhabitants=int(row["population"]),
        inhabitants_year=int(row["population_year"]),
    )


def worked_example():  # type: ignore[no-untyped-def]
    tenants = [
        municipality("41002", "aalst"),
        municipality("41011", "denderleeuw"),
        municipality("41024", "haaltert"),
    ]
    prices = PriceList(
        (
            PriceEntry(SERVICE, "small", Decimal("120.00")),
            PriceEntry(SERVICE, "medium", Decimal("240.00")),
            PriceEntry(SERVICE, "medium", Decimal("264.00"), date(2024, 4, 21)),
        )
    )
    pools = [
        CostPool(
            name="open-formulieren-licence",
            kind=PoolKind.SERVICE,
            service=SERVICE,
            monthly_amount=Decimal("1000.00"),
            key=SharingKey.INHABITANTS,
        ),
        CostPool(
            name="platform",
            kind=PoolKind.PLATFORM,
            monthly_amount=Decimal("2500.00"),
            key=SharingKey.MIXED,
            equal_percent=Decimal(40),
        ),
    ]

    def event(instance: str, kind: UsageKind, at, plan: str | None = None) -> UsageEvent:  # type: ignore[no-untyped-def]
        return UsageEvent(f"{instance}-forms", instance, SERVICE, kind, at, plan)

    events = [
        event("aalst", UsageKind.STARTED, local(2024, 2, 1), "medium"),
        event("denderleeuw", UsageKind.STARTED, local(2024, 3, 15), "small"),
        event("denderleeuw", UsageKind.PLAN_CHANGED, local(2024, 4, 11), "medium"),
        event("haaltert", UsageKind.STARTED, local(2024, 4, 16, 9, 30), "small"),
    ]
    return compute_statements(
        period=Period(2024, 4), tenants=tenants, events=events, prices=prices, pools=pools, now=NOW
    )


def test_inhabitants_come_from_statbel() -> None:
    assert [municipality(n, n).inhabitants for n in ("41002", "41011", "41024")] == [
        87332,
        20551,
        18582,
    ]


def test_plan_fees() -> None:
    result = worked_example()
    fees = {
        s.tenant.slug: [(x.plan, x.unit_price, x.exact_share, x.amount) for x in s.lines if x.plan]
        for s in result.statements
    }
    assert fees == {
        "aalst": [
            ("medium", Decimal("240.00"), Fraction(2, 3), Decimal("160.00")),
            ("medium", Decimal("264.00"), Fraction(1, 3), Decimal("88.00")),
        ],
        "denderleeuw": [
            ("small", Decimal("120.00"), Fraction(1, 3), Decimal("40.00")),
            ("medium", Decimal("240.00"), Fraction(1, 3), Decimal("80.00")),
            ("medium", Decimal("264.00"), Fraction(1, 3), Decimal("88.00")),
        ],
        "haaltert": [("small", Decimal("120.00"), Fraction(701, 1440), Decimal("58.42"))],
    }


def test_shared_service_by_inhabitants_with_largest_remainder() -> None:
    licence = worked_example().pools[0]
    assert [(s.tenant, s.share, s.amount) for s in licence.shares] == [
        # Prorated by days used: haaltert used open-formulieren 15 of April's 30 days, so its
        # weight is 18582 x 15/30 = 9291; total 87332 + 20551 + 9291 = 117174.
        # 745.3189… and 175.3887… have the largest remainders: they get the 2 cents left.
        ("aalst", Fraction(87332, 117174), Decimal("745.32")),
        ("denderleeuw", Fraction(20551, 117174), Decimal("175.39")),
        ("haaltert", Fraction(9291, 117174), Decimal("79.29")),
    ]


def test_platform_by_mixed_key() -> None:
    platform = worked_example().pools[1]
    assert [(s.tenant, s.share, s.amount) for s in platform.shares] == [
        ("aalst", Fraction(346306, 632325), Decimal("1369.18")),
        ("denderleeuw", Fraction(145963, 632325), Decimal("577.09")),
        ("haaltert", Fraction(140056, 632325), Decimal("553.73")),
    ]


def test_totals_to_the_cent() -> None:
    closed = close_period(worked_example(), closed_by="finance", at=NOW)
    totals = {s.tenant.slug: (s.totals.as_dict()) for s in closed.statements}
    assert totals == {
        "aalst": {
            "plan_fees": "248.00",
            "shared_services": "745.32",
            "platform": "1369.18",
            "total": "2362.50",
        },
        "denderleeuw": {
            "plan_fees": "208.00",
            "shared_services": "175.39",
            "platform": "577.09",
            "total": "960.48",
        },
        "haaltert": {
            "plan_fees": "58.42",
            "shared_services": "79.29",
            "platform": "553.73",
            "total": "691.44",
        },
    }
    assert closed.totals.total == Decimal("4014.42")
