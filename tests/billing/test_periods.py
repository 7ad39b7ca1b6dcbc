from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.billing import Period
from controlplane.billing.errors import PeriodInFuture, PeriodInvalid


def test_parse_gives_the_month() -> None:
    period = Period.parse("2024-03")
    assert (period.year, period.month, str(period)) == (2024, 3, "2024-03")


@pytest.mark.parametrize("text", ["2024-3", "03-2024", "2024/03", "march", "", "2024-03-01"])
def test_malformed_period_says_how_to_write_it(text: str) -> None:
    with pytest.raises(PeriodInvalid) as caught:
        Period.parse(text)
    assert repr(text) in caught.value.detail
    assert "YYYY-MM" in caught.value.detail


@pytest.mark.parametrize(("text", "month"), [("2024-13", "13"), ("2024-00", "0")])
def test_unknown_month_is_named(text: str, month: str) -> None:
    with pytest.raises(PeriodInvalid) as caught:
        Period.parse(text)
    assert f"there is no month {month}" in caught.value.detail


def test_period_in_the_future_is_refused_with_the_current_month_as_hint() -> None:
    now = datetime(2024, 5, 10, 12, tzinfo=UTC)
    with pytest.raises(PeriodInFuture) as caught:
        Period.parse("2024-06", now=now)
    assert "2024-06 has not started yet" in caught.value.detail
    assert caught.value.hint == "use 2024-05 or an earlier month"
    assert Period.parse("2024-05", now=now) == Period(2024, 5)


def test_period_starts_at_brussels_midnight() -> None:
    # 1 May 2024 00:00 CEST is 30 April 22:00 UTC; the period is already running then.
    now = datetime(2024, 4, 30, 22, 30, tzinfo=UTC)
    assert Period.parse("2024-05", now=now).start == datetime(2024, 4, 30, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "hours"),
    [("2024-03", 743), ("2024-10", 745), ("2024-04", 720), ("2024-02", 696)],
)
def test_period_length_follows_daylight_saving(text: str, hours: int) -> None:
    assert Period.parse(text).microseconds == hours * 3_600_000_000


def test_next_and_previous_cross_years() -> None:
    assert Period(2024, 12).next == Period(2025, 1)
    assert Period(2025, 1).previous == Period(2024, 12)
