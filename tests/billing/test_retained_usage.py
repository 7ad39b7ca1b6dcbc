"""Retained instances (issue 18, retention on delete): their storage is metered, their
workloads are not (no cpu, no memory, no plan fee, no run time in the pools' shares)."""

from __future__ import annotations

from decimal import Decimal

from controlplane.billing import LineKind, Period, compute_statements
from controlplane.billing.metering import MeasureRule, RateCard, UnitRate, meter
from controlplane.billing.models import UsageEvent, UsageKind
from tests.billing.builders import NOW, local, prices
from tests.billing.test_worked_example import municipality

APRIL = Period(2024, 4)
RATES = RateCard(
    (
        UnitRate("cpu_core_hours", Decimal("0.031"), rule=MeasureRule.REQUEST),
        UnitRate("memory_gib_hours", Decimal("0.0045")),
        UnitRate("storage_gib_months", Decimal("0.115")),
    )
)


def _event(kind: UsageKind, day: int, plan: str | None = "small") -> UsageEvent:
    resources = (Decimal("0.5"), Decimal(1), Decimal(10)) if plan else (None, None, None)
    return UsageEvent("aalst-forms", "aalst", "forms", kind, local(2024, 4, day), plan, *resources)


def _statement(events: list[UsageEvent]):  # type: ignore[no-untyped-def]
    result = compute_statements(
        period=APRIL,
        tenants=[municipality("41002", "aalst")],
        events=events,
        prices=prices(small="90.00"),
        pools=[],
        now=NOW,
        rates=RATES,
        measured=[],
    )
    [statement] = result.statements
    return statement


def test_a_retained_stretch_meters_storage_only() -> None:
    # Ran 1-11 April (10 days), retained 11-21 April (10 days), restored 21 April-1 May.
    events = [
        _event(UsageKind.STARTED, 1),
        _event(UsageKind.RETAINED, 11),
        _event(UsageKind.PLAN_CHANGED, 21),
    ]
    intervals = meter(events, APRIL)
    assert [(i.start, i.retained, i.cpu, i.memory, i.storage) for i in intervals] == [
        (local(2024, 4, 1), False, Decimal("0.5"), Decimal(1), Decimal(10)),
        (local(2024, 4, 11), True, None, None, Decimal(10)),
        (local(2024, 4, 21), False, Decimal("0.5"), Decimal(1), Decimal(10)),
    ]
    lines = _statement(events).lines
    usage = {x.measure: x.quantity for x in lines if x.kind is LineKind.USAGE}
    # 20 days ran: 480 h x 0.5 cores = 240 core-hours, 480 GiB-hours; storage all 30 days.
    assert usage["cpu_core_hours"] == Decimal("240.000000")
    assert usage["memory_gib_hours"] == Decimal("480.000000")
    assert usage["storage_gib_months"] == Decimal("10.000000")
    fees = [x for x in lines if x.kind is LineKind.PLAN_FEE]
    # The plan fee for the 20 days it ran (2 x 10 of 30 days of 90.00), none while retained.
    assert sum(x.amount for x in fees) == Decimal("60.00")
    assert [(x.start, x.end) for x in fees] == [
        (local(2024, 4, 1), local(2024, 4, 11)),
        (local(2024, 4, 21), local(2024, 5, 1)),
    ]


def test_retained_until_purged_bills_storage_until_the_purge() -> None:
    events = [
        _event(UsageKind.STARTED, 1),
        _event(UsageKind.RETAINED, 16),
        _event(UsageKind.STOPPED, 26, plan=None),
    ]
    lines = _statement(events).lines
    usage = {x.measure: x.quantity for x in lines if x.kind is LineKind.USAGE}
    assert usage["cpu_core_hours"] == Decimal("180.000000")  # 15 days x 24 h x 0.5
    assert usage["storage_gib_months"] == Decimal("8.333333")  # 10 GiB x 25/30
    assert sum(x.amount for x in lines if x.kind is LineKind.PLAN_FEE) == Decimal("45.00")
