from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.billing import Period, meter
from controlplane.billing.errors import UsageInvalid
from tests.billing.builders import changed, local, started, stopped

APRIL = Period(2024, 4)


def test_intervals_per_plan_are_clipped_to_the_period() -> None:
    events = [
        started("i1", "gent", local(2024, 3, 20)),
        changed("i1", "gent", local(2024, 4, 11), "large"),
        stopped("i1", "gent", local(2024, 5, 3)),
    ]
    intervals = meter(events, APRIL)
    assert [(i.plan, i.start, i.end) for i in intervals] == [
        ("small", APRIL.start, local(2024, 4, 11)),
        ("large", local(2024, 4, 11), APRIL.end),
    ]


def test_event_order_in_the_input_does_not_matter() -> None:
    events = [
        stopped("i1", "gent", local(2024, 4, 20)),
        started("i1", "gent", local(2024, 4, 2)),
        started("i1", "gent", local(2024, 4, 25)),
    ]
    intervals = meter(events, APRIL)
    assert [(i.start, i.end) for i in intervals] == [
        (local(2024, 4, 2), local(2024, 4, 20)),
        (local(2024, 4, 25), APRIL.end),
    ]


def test_instance_stopped_before_the_period_has_no_interval() -> None:
    events = [started("i1", "gent", local(2024, 1, 1)), stopped("i1", "gent", local(2024, 3, 1))]
    assert meter(events, APRIL) == []


def test_month_to_date_stops_at_until() -> None:
    until = local(2024, 4, 16)
    intervals = meter([started("i1", "gent", local(2024, 3, 1))], APRIL, until=until)
    assert intervals[0].end == until


def test_plan_change_without_start_is_refused() -> None:
    with pytest.raises(UsageInvalid) as caught:
        meter([changed("i1", "gent", local(2024, 4, 2), "large")], APRIL)
    assert "instance i1: plan_changed" in caught.value.detail
    assert "without a started event" in caught.value.detail


def test_double_start_is_refused() -> None:
    events = [started("i1", "gent", local(2024, 4, 2)), started("i1", "gent", local(2024, 4, 3))]
    with pytest.raises(UsageInvalid, match=r"instance i1 started at .* while already running"):
        meter(events, APRIL)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(UsageInvalid, match="naive datetime"):
        started("i1", "gent", datetime(2024, 4, 2))


def test_started_event_needs_a_plan() -> None:
    with pytest.raises(UsageInvalid, match="usage event started of instance i1 has no plan"):
        started("i1", "gent", datetime(2024, 4, 2, tzinfo=UTC), plan="")
