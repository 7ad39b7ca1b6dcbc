"""Rated usage (issue 16, metering): unit rates * usage, and pools keyed by usage cost.

The worked example: three municipalities of Oost-Vlaanderen (Statbel 2020 inhabitants) run
``forms`` in April 2024 (30 days, all in CEST: 720 hours). Every figure is worked out by hand
in the comments and asserted to the cent.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.billing import (
    CostPool,
    LineKind,
    Period,
    PoolKind,
    SharingKey,
    UsageMeasure,
    close_period,
    compute_statements,
)
from controlplane.billing.errors import PriceInvalid, UsageInvalid
from controlplane.billing.metering import MeasuredUsage, MeasureRule, RateCard, UnitRate
from controlplane.billing.models import UsageEvent, UsageKind
from tests.billing.builders import NOW, local, prices, tenant
from tests.billing.test_worked_example import municipality

APRIL = Period(2024, 4)


def event(slug: str, kind: UsageKind, at, plan=None, cpu=None, memory=None, storage=None):  # type: ignore[no-untyped-def]
    return UsageEvent(f"{slug}-forms", slug, "forms", kind, at, plan, cpu, memory, storage)


def month(slug: str, measure: str, quantity: str) -> MeasuredUsage:
    return MeasuredUsage(
        slug, f"{slug}-forms", measure, local(2024, 4, 1), local(2024, 5, 1), Decimal(quantity)
    )


RATES = RateCard(
    (
        UnitRate("cpu_core_hours", Decimal("0.031"), rule=MeasureRule.MAX),
        UnitRate("memory_gib_hours", Decimal("0.0045")),
        UnitRate("storage_gib_months", Decimal("0.115")),
        UnitRate("backup_gib_months", Decimal("0.05"), unit="GiB-month"),
    )
)


def worked_example():  # type: ignore[no-untyped-def]
    tenants = [
        municipality("41002", "aalst"),
        municipality("41011", "denderleeuw"),
        municipality("41024", "haaltert"),
    ]
    events = [
        event("aalst", UsageKind.STARTED, local(2024, 4, 1), "medium", 2, 4, 20),
        event("denderleeuw", UsageKind.STARTED, local(2024, 4, 11), "small", "0.5", 1, 10),
        event("haaltert", UsageKind.STARTED, local(2024, 4, 1), "small", "0.5", 1, 10),
        event("haaltert", UsageKind.STOPPED, local(2024, 4, 8, 12)),
    ]
    measured = [
        month("aalst", "cpu_core_hours", "1500"),
        month("haaltert", "cpu_core_hours", "80"),
        month("aalst", "backup_gib_months", "33.3"),
    ]
    pools = [
        CostPool(
            name="forms-licence",
            kind=PoolKind.SERVICE,
            service="forms",
            monthly_amount=Decimal("1000.00"),
            key=SharingKey.MIXED,
            equal_percent=Decimal(30),
        ),
        CostPool(
            name="idle",
            kind=PoolKind.PLATFORM,
            monthly_amount=Decimal("500.00"),
            key=SharingKey.USAGE,
            usage_measure=UsageMeasure.USAGE_COST,
        ),
    ]
    return compute_statements(
        period=APRIL,
        tenants=tenants,
        events=events,
        prices=prices(small="100.00", medium="200.00"),
        pools=pools,
        now=NOW,
        rates=RATES,
        measured=measured,
    )


def test_usage_lines_per_instance_and_measure() -> None:
    lines = {
        (s.tenant.slug, x.measure): (x.quantity, x.unit, x.unit_price, x.amount)
        for s in worked_example().statements
        for x in s.lines
        if x.kind is LineKind.USAGE
    }
    q = Decimal
    assert lines == {
        # aalst: 2 cores x 720 h = 1440 requested < 1500 measured: max = 1500 x 0.031 = 46.50
        ("aalst", "cpu_core_hours"): (q("1500.000000"), "core-hour", q("0.031"), q("46.50")),
        # 4 GiB x 720 h = 2880 x 0.0045 = 12.96
        ("aalst", "memory_gib_hours"): (q("2880.000000"), "GiB-hour", q("0.0045"), q("12.96")),
        # 20 GiB x 1 month x 0.115 = 2.30
        ("aalst", "storage_gib_months"): (q("20.000000"), "GiB-month", q("0.115"), q("2.30")),
        # measured only: 33.3 x 0.05 = 1.665 -> 1.67 (half away from zero)
        ("aalst", "backup_gib_months"): (q("33.300000"), "GiB-month", q("0.05"), q("1.67")),
        # denderleeuw from 11 April: 480 h; 0.5 x 480 = 240 x 0.031 = 7.44 (nothing measured)
        ("denderleeuw", "cpu_core_hours"): (q("240.000000"), "core-hour", q("0.031"), q("7.44")),
        ("denderleeuw", "memory_gib_hours"): (q("480.000000"), "GiB-hour", q("0.0045"), q("2.16")),
        # 10 GiB x 20/30 month = 6.666667 x 0.115 = 0.766… -> 0.77
        ("denderleeuw", "storage_gib_months"): (
            q("6.666667"),
            "GiB-month",
            q("0.115"),
            q("0.77"),
        ),
        # haaltert 1 April to 8 April 12:00: 180 h; 0.5 x 180 = 90 > 80 measured: 90 x 0.031
        ("haaltert", "cpu_core_hours"): (q("90.000000"), "core-hour", q("0.031"), q("2.79")),
        ("haaltert", "memory_gib_hours"): (q("180.000000"), "GiB-hour", q("0.0045"), q("0.81")),
        # 10 GiB x 7.5/30 = 2.5 x 0.115 = 0.2875 -> 0.29
        ("haaltert", "storage_gib_months"): (q("2.500000"), "GiB-month", q("0.115"), q("0.29")),
    }


def largest_remainder(total_cents: int, shares: list[tuple[str, Fraction]]) -> dict[str, int]:
    """The hand rule: floors, then the cents left to the largest remainders."""
    floors = {name: math.floor(total_cents * share) for name, share in shares}
    left = total_cents - sum(floors.values())
    by_rest = sorted(shares, key=lambda item: -(total_cents * item[1] - floors[item[0]]))
    for name, _ in by_rest[:left]:
        floors[name] += 1
    return floors


def test_idle_pool_spread_by_usage_cost() -> None:
    idle = next(p for p in worked_example().pools if p.pool.name == "idle")
    # usage cost in cents: aalst 4650 + 1296 + 230 + 167 = 6343; denderleeuw 744 + 216 + 77
    # = 1037; haaltert 279 + 81 + 29 = 389; total 7769.
    cost = {"aalst": 6343, "denderleeuw": 1037, "haaltert": 389}
    shares = [(slug, Fraction(c, 7769)) for slug, c in cost.items()]
    # 50000 x 6343/7769 = 40822.4997, x 1037/7769 = 6673.9606, x 389/7769 = 2503.5397:
    # floors 49998; the two cents left go to the largest remainders, denderleeuw (.9606) and
    # haaltert (.5397), not aalst (.4997).
    assert largest_remainder(50000, shares) == {
        "aalst": 40822,
        "denderleeuw": 6674,
        "haaltert": 2504,
    }
    assert [(s.tenant, s.share, s.amount) for s in idle.shares] == [
        ("aalst", Fraction(6343, 7769), Decimal("408.22")),
        ("denderleeuw", Fraction(1037, 7769), Decimal("66.74")),
        ("haaltert", Fraction(389, 7769), Decimal("25.04")),
    ]


def test_mixed_pool_30_equal_70_inhabitants_prorated() -> None:
    licence = next(p for p in worked_example().pools if p.pool.name == "forms-licence")
    # Days used of April's 30: aalst 30, denderleeuw 20 (11-30), haaltert 8 (1-8).
    f = {"aalst": Fraction(1), "denderleeuw": Fraction(2, 3), "haaltert": Fraction(8, 30)}
    w = {"aalst": 87332, "denderleeuw": 20551, "haaltert": 18582}
    sum_f = sum(f.values())  # 29/15
    sum_wf = sum(w[s] * f[s] for s in f)
    exact = {s: Fraction(3, 10) * f[s] / sum_f + Fraction(7, 10) * w[s] * f[s] / sum_wf for s in f}
    assert sum(exact.values()) == 1
    assert exact["aalst"] == Fraction(33746775, 46104722)
    # 100000 cents x share: 73195.919, 19393.473, 7410.608 -> the cent left goes to haaltert.
    assert largest_remainder(100000, list(exact.items())) == {
        "aalst": 73196,
        "denderleeuw": 19393,
        "haaltert": 7411,
    }
    assert [(s.tenant, s.share, s.amount) for s in licence.shares] == [
        (slug, exact[slug], amount)
        for slug, amount in (
            ("aalst", Decimal("731.96")),
            ("denderleeuw", Decimal("193.93")),
            ("haaltert", Decimal("74.11")),
        )
    ]


def test_totals_to_the_cent() -> None:
    result = worked_example()
    totals = {s.tenant.slug: s.totals.as_dict() for s in result.statements}
    assert totals == {
        # plan fee 200.00; usage 63.43; licence 731.96; idle 408.22
        "aalst": {
            "plan_fees": "200.00",
            "usage": "63.43",
            "shared_services": "731.96",
            "platform": "408.22",
            "total": "1403.61",
        },
        # plan fee 100 x 20/30 = 66.67; usage 10.37; licence 193.93; idle 66.74
        "denderleeuw": {
            "plan_fees": "66.67",
            "usage": "10.37",
            "shared_services": "193.93",
            "platform": "66.74",
            "total": "337.71",
        },
        # plan fee 100 x 7.5/30 = 25.00; usage 3.89; licence 74.11; idle 25.04
        "haaltert": {
            "plan_fees": "25.00",
            "usage": "3.89",
            "shared_services": "74.11",
            "platform": "25.04",
            "total": "128.04",
        },
    }
    assert result.totals.total == Decimal("1869.36")


def test_closing_keeps_the_usage_lines_in_the_digest() -> None:
    from controlplane.billing.ledger import from_document

    closed = close_period(worked_example(), closed_by="finance", at=NOW)
    again = from_document(closed.as_dict())
    again.verify()
    assert again.digest == closed.digest
    assert again.statement("aalst").totals.usage == Decimal("63.43")


def test_statements_without_rates_have_no_usage_fields() -> None:
    events = [event("aalst", UsageKind.STARTED, local(2024, 4, 1), "small", 1, 1, 1)]
    result = compute_statements(
        period=APRIL,
        tenants=[tenant("aalst", "41002")],
        events=events,
        prices=prices(small="100.00"),
        now=NOW,
    )
    document = result.as_dict()
    assert "usage" not in document["totals"]
    assert all("measure" not in line for line in document["statements"][0]["lines"])


def test_a_rate_change_splits_the_usage_line() -> None:
    rates = RateCard(
        (
            UnitRate("cpu_core_hours", Decimal("0.03")),
            UnitRate("cpu_core_hours", Decimal("0.06"), date(2024, 4, 16)),
        )
    )
    events = [event("aalst", UsageKind.STARTED, local(2024, 4, 1), "small", 1)]
    result = compute_statements(
        period=APRIL,
        tenants=[tenant("aalst", "41002")],
        events=events,
        prices=prices(small="0.00"),
        now=NOW,
        rates=rates,
    )
    usage = [x for x in result.statements[0].lines if x.kind is LineKind.USAGE]
    # 15 days = 360 h at 0.03 = 10.80, then 360 h at 0.06 = 21.60
    assert [(x.quantity, x.amount) for x in usage] == [
        (Decimal("360.000000"), Decimal("10.80")),
        (Decimal("360.000000"), Decimal("21.60")),
    ]


@pytest.mark.parametrize(
    ("measure", "unit", "rule", "rate"),
    [
        ("cpu_core_hours", "GiB-hour", None, "0.1"),  # wrong unit for a built-in
        ("backup", "", None, "0.1"),  # operator measure without a unit
        ("backup", "GiB", MeasureRule.REQUEST, "0.1"),  # an operator measure has no request
        ("cpu_core_hours", "", None, "0.0000001"),  # more than six decimals
        ("cpu_core_hours", "", None, "-1"),
        ("Bad Name", "x", None, "1"),
    ],
)
def test_invalid_rates_are_refused(measure: str, unit: str, rule: MeasureRule, rate: str) -> None:
    with pytest.raises(PriceInvalid):
        UnitRate(measure, Decimal(rate), unit=unit, rule=rule)


def test_measured_usage_past_the_month_is_refused() -> None:
    record = MeasuredUsage(
        "aalst", "aalst-forms", "backup", local(2024, 4, 20), local(2024, 5, 2), Decimal(1)
    )
    with pytest.raises(UsageInvalid, match="month"):
        compute_statements(
            period=APRIL,
            tenants=[tenant("aalst", "41002")],
            events=[],
            prices=prices(small="0.00"),
            now=NOW,
            rates=RateCard((UnitRate("backup", Decimal("1"), unit="GiB"),)),
            measured=[record],
        )


@settings(max_examples=60, deadline=None)
@given(
    instances=st.lists(
        st.tuples(
            st.integers(0, 4),  # tenant
            st.integers(1, 29),  # start day
            st.integers(0, 16_000).map(lambda m: Decimal(m).scaleb(-3)),  # cpu cores
            st.integers(0, 64_000).map(lambda m: Decimal(m).scaleb(-3)),  # memory GiB
            st.integers(0, 500),  # storage GiB
            st.integers(0, 10**6).map(lambda m: Decimal(m).scaleb(-2)),  # measured cpu
        ),
        min_size=1,
        max_size=8,
    ),
    cpu_rate=st.integers(0, 10**6).map(lambda m: Decimal(m).scaleb(-6)),
    storage_rate=st.integers(0, 10**6).map(lambda m: Decimal(m).scaleb(-6)),
    pool_cents=st.integers(0, 10**8),
)
def test_rated_usage_and_a_usage_cost_pool_sum_to_the_cent(
    instances: list[tuple[int, int, Decimal, Decimal, int, Decimal]],
    cpu_rate: Decimal,
    storage_rate: Decimal,
    pool_cents: int,
) -> None:
    tenants = [tenant(f"t{n}", f"4100{n}") for n in range(5)]
    events, measured = [], []
    for number, (who, day, cpu, memory, storage, used) in enumerate(instances):
        slug = f"t{who}"
        instance = f"i{number}"
        at = local(2024, 4, day)
        events.append(
            UsageEvent(
                instance, slug, "forms", UsageKind.STARTED, at, "small", cpu, memory, storage
            )
        )
        measured.append(
            MeasuredUsage(slug, instance, "cpu_core_hours", at, local(2024, 5, 1), used)
        )
    rates = RateCard(
        (
            UnitRate("cpu_core_hours", cpu_rate, rule=MeasureRule.MAX),
            UnitRate("memory_gib_hours", Decimal("0.004")),
            UnitRate("storage_gib_months", storage_rate),
        )
    )
    pool = CostPool(
        name="idle",
        kind=PoolKind.PLATFORM,
        monthly_amount=Decimal(pool_cents).scaleb(-2),
        key=SharingKey.USAGE,
        usage_measure=UsageMeasure.USAGE_COST,
    )
    result = compute_statements(
        period=APRIL,
        tenants=tenants,
        events=events,
        prices=prices(small="0.00"),
        pools=[pool],
        now=NOW,
        rates=rates,
        measured=measured,
    )
    cost: dict[str, int] = {}
    for statement in result.statements:
        for line in statement.lines:
            if line.kind is LineKind.USAGE:
                # every line is its exact quantity x rate, rounded half up to the cent
                exact = line.exact_share * Fraction(line.unit_price) * 100
                whole, rest = divmod(exact.numerator, exact.denominator)
                assert line.amount * 100 == whole + (1 if 2 * rest >= exact.denominator else 0)
                cost[statement.tenant.slug] = cost.get(statement.tenant.slug, 0) + int(
                    line.amount * 100
                )
        assert statement.totals.usage * 100 == cost.get(statement.tenant.slug, 0)
    (allocation,) = result.pools
    assert sum(s.amount_cents for s in allocation.shares) == pool_cents
    total = sum(cost.values())
    for share in allocation.shares:
        if total:
            assert share.share == Fraction(cost.get(share.tenant, 0), total)
            assert abs(share.amount_cents - pool_cents * share.share) < 1
    assert result.totals.total * 100 == sum(cost.values()) + pool_cents
