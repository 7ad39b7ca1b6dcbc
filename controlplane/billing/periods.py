"""Billing periods: calendar months in Europe/Brussels.

A period starts at local midnight on the first of the month and ends at local midnight on the
first of the next month, so a month with a daylight-saving change is an hour shorter or longer
than its days suggest. Everything else in billing works on aware UTC datetimes; this module is
the one place that knows the local time zone.

This module must not know about usage, prices or the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controlplane.billing.errors import PeriodInFuture, PeriodInvalid, UsageInvalid

#: The time zone of billing periods and of price effective dates.
BRUSSELS = ZoneInfo("Europe/Brussels")

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
#: Datetime arithmetic is exact in microseconds; shares are ratios of these.
MICROSECOND = timedelta(microseconds=1)


def local_midnight(day: date) -> datetime:
    """Midnight at the start of ``day`` in Brussels, as an aware UTC datetime."""
    return datetime.combine(day, time(), tzinfo=BRUSSELS).astimezone(UTC)


def require_aware(value: datetime, what: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused because its instant is unknown."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageInvalid(
            detail=f"{what} is a naive datetime ({value.isoformat()}): its instant is unknown",
            hint="pass an aware datetime, e.g. datetime(..., tzinfo=UTC)",
        )
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One calendar month in Europe/Brussels, e.g. ``Period(2024, 3)`` is ``2024-03``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise PeriodInvalid(
                detail=f"billing period {self.year:04d}-{self.month:02d}: there is no month "
                f"{self.month}",
                hint="use a month from 01 to 12, e.g. 2024-03",
            )
        if not 2000 <= self.year <= 9998:
            raise PeriodInvalid(
                detail=f"billing period {self.year:04d}-{self.month:02d}: year {self.year} is "
                "outside 2000-9998",
                hint="use the year of the month to bill, e.g. 2024-03",
            )

    @classmethod
    def parse(cls, text: str, *, now: datetime | None = None) -> Period:
        """Parse ``YYYY-MM``; with ``now``, refuse a month that has not started yet."""
        match = _PERIOD.fullmatch(text.strip(" "))  # spaces only: "2024-03\n" is no period
        if match is None:
            raise PeriodInvalid(
                detail=f"billing period {text!r} is not written as YYYY-MM",
                hint="write the month as four-digit year, dash, two-digit month: 2024-03",
            )
        period = cls(int(match[1]), int(match[2]))
        if now is not None:
            period.ensure_started(now)
        return period

    @classmethod
    def containing(cls, instant: datetime) -> Period:
        """The period that contains ``instant`` (an aware datetime)."""
        local = require_aware(instant, "instant").astimezone(BRUSSELS)
        return cls(local.year, local.month)

    def ensure_started(self, now: datetime) -> None:
        """Refuse a period that starts after ``now`` (there is nothing to bill yet)."""
        if self.start > require_aware(now, "now"):
            raise PeriodInFuture(
                detail=f"billing period {self} has not started yet (it starts "
                f"{self.start.astimezone(BRUSSELS):%Y-%m-%d %H:%M} Europe/Brussels)",
                hint=f"use {Period.containing(now)} or an earlier month",
            )

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def previous(self) -> Period:
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def start(self) -> datetime:
        """Local midnight on the first of the month, in UTC."""
        return local_midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """Local midnight on the first of the next month, in UTC (exclusive)."""
        return local_midnight(self.next.first_day)

    @property
    def microseconds(self) -> int:
        """Length of the period (DST-correct): the denominator of every time share."""
        return (self.end - self.start) // MICROSECOND

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
