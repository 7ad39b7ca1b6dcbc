"""Metering: from usage events to the intervals an instance ran in a plan, inside a period.

Each instance's events are replayed in time order (started → plan_changed … → stopped); every
stretch between two events is an interval in one plan, clipped to the period and, for a month
still running, to ``until`` (month to date). Intervals are aware UTC datetimes, so a month with
a daylight-saving change has its true length; a share of the period is an exact ratio of
microseconds. After ``retained`` (deleted, data kept) an interval meters storage only: no cpu,
no memory, and no plan fee or run time in the statements.

The second half rates usage: effective-dated unit rates per measure (:class:`RateCard`), the
requested and measured quantities of every instance, and quantity * rate in cents
(:func:`rate_usage`).

This module must not know about plan prices, pools or the database.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction

from controlplane.billing.errors import PriceInvalid, UsageInvalid
from controlplane.billing.models import UsageEvent, UsageKind
from controlplane.billing.periods import MICROSECOND, Period, local_midnight, require_aware

_ORDER = {
    UsageKind.STARTED: 0,
    UsageKind.PLAN_CHANGED: 1,
    UsageKind.RETAINED: 2,
    UsageKind.STOPPED: 3,
}


@dataclass(frozen=True, slots=True)
class UsageInterval:
    """An instance ran in ``plan`` from ``start`` to ``end`` (inside one period)."""

    instance_id: str
    tenant: str
    service: str
    plan: str
    start: datetime
    end: datetime
    cpu: Decimal | None
    memory: Decimal | None
    storage: Decimal | None = None
    #: Deleted with its data retained: only its storage is metered (no workloads run).
    retained: bool = False

    @property
    def microseconds(self) -> int:
        return (self.end - self.start) // MICROSECOND

    @property
    def hours(self) -> Fraction:
        return Fraction(self.microseconds, 3_600_000_000)


def group_by_instance(events: Iterable[UsageEvent]) -> dict[str, list[UsageEvent]]:
    """Events per instance in replay order (time, then started < plan_changed < stopped)."""
    grouped: dict[str, list[UsageEvent]] = defaultdict(list)
    for event in events:
        grouped[event.instance_id].append(event)
    for items in grouped.values():
        items.sort(key=lambda e: (e.at, _ORDER[e.kind]))
    return dict(grouped)


def meter(
    events: Iterable[UsageEvent] | dict[str, list[UsageEvent]],
    period: Period,
    *,
    until: datetime | None = None,
) -> list[UsageInterval]:
    """The intervals of every instance inside ``period`` (and before ``until``), sorted.

    Pass the result of :func:`group_by_instance` to meter many periods from one event stream
    without grouping it again.
    """
    grouped = events if isinstance(events, dict) else group_by_instance(events)
    start = period.start
    end = period.end if until is None else min(period.end, until)
    intervals: list[UsageInterval] = []
    for instance_id in sorted(grouped):
        intervals.extend(_replay(instance_id, grouped[instance_id], start, end))
    return intervals


def _replay(
    instance_id: str, events: list[UsageEvent], start: datetime, end: datetime
) -> list[UsageInterval]:
    result: list[UsageInterval] = []
    first = events[0]
    running: UsageEvent | None = None
    for event in events:
        if event.tenant != first.tenant or event.service != first.service:
            raise UsageInvalid(
                detail=f"instance {instance_id} has usage events for two tenants or services "
                f"({first.tenant}/{first.service} and {event.tenant}/{event.service})",
                hint="an instance belongs to one tenant and one service; check the events' "
                "instance ids",
            )
        if event.kind is UsageKind.STARTED:
            if running is not None:
                raise UsageInvalid(
                    detail=f"instance {instance_id} started at {event.at.isoformat()} while "
                    f"already running since {running.at.isoformat()}",
                    hint="a started event must follow a stopped event (or be the first)",
                )
        elif running is None:
            raise UsageInvalid(
                detail=f"instance {instance_id}: {event.kind} at {event.at.isoformat()} "
                "without a started event before it",
                hint="every instance's events begin with started",
            )
        if running is not None:
            _clip(result, instance_id, running, running.at, event.at, start, end)
        running = None if event.kind is UsageKind.STOPPED else event
        if event.at >= end:
            return result
    if running is not None:
        _clip(result, instance_id, running, running.at, end, start, end)
    return result


def _clip(
    into: list[UsageInterval],
    instance_id: str,
    opened: UsageEvent,
    begin: datetime,
    finish: datetime,
    start: datetime,
    end: datetime,
) -> None:
    lo = max(begin, start)
    hi = min(finish, end)
    if hi <= lo:
        return
    assert opened.plan is not None  # UsageEvent guarantees a plan on started/plan_changed
    retained = opened.kind is UsageKind.RETAINED
    into.append(
        UsageInterval(
            instance_id=instance_id,
            tenant=opened.tenant,
            service=opened.service,
            plan=opened.plan,
            start=lo,
            end=hi,
            cpu=None if retained else opened.cpu,
            memory=None if retained else opened.memory,
            storage=opened.storage,
            retained=retained,
        )
    )


# -- unit rates and rated usage --------------------------------------------------------------
#
# A unit rate prices one *measure* (€ per core-hour, GiB-hour, GiB-month, or an operator's own
# measure) from a date on. Its *rule* says where the quantity comes from: ``request`` (the
# plan's requests over time, the volume size for storage), ``measured`` (imported records, e.g.
# an OpenCost allocation export) or ``max`` (per instance, the larger of the two). Operator
# measures have no request, so their rule is always ``measured``. Usage before a measure's
# first rate is not rated.


class MeasureRule(StrEnum):
    REQUEST = "request"
    MEASURED = "measured"
    MAX = "max"


#: The built-in measures and their units; any other measure is operator-defined.
BUILTIN_MEASURES: dict[str, str] = {
    "cpu_core_hours": "core-hour",
    "memory_gib_hours": "GiB-hour",
    "storage_gib_months": "GiB-month",
}
#: A rate has at most this many decimals (€ per unit).
RATE_PLACES = 6
_MEASURE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
_HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class UnitRate:
    """The price of one unit of ``measure`` from ``effective_from`` (Brussels midnight) on."""

    measure: str
    rate: Decimal
    effective_from: date | None = None
    unit: str = ""
    rule: MeasureRule | None = None

    def __post_init__(self) -> None:
        what = f"unit rate of {self.measure} from {self.effective_from or 'the start'}"
        if not _MEASURE.fullmatch(self.measure or ""):
            raise PriceInvalid(
                detail=f"measure {self.measure!r} is not a measure name",
                hint="use lower-case letters, digits and _, e.g. backup_gib_months",
            )
        if isinstance(self.rate, (float, bool)):
            raise PriceInvalid(detail=f"{what} is a float ({self.rate!r}); money is never a float")
        try:
            rate = Decimal(self.rate)
        except (InvalidOperation, ValueError) as exc:
            raise PriceInvalid(detail=f"{what}: {self.rate!r} is not a number") from exc
        if not rate.is_finite() or rate < 0 or rate != rate.quantize(Decimal(1).scaleb(-6)):
            raise PriceInvalid(
                detail=f"{what}: {self.rate} must be 0 or more with at most {RATE_PLACES} decimals",
                hint='write it as "0.021500" (euro per unit)',
            )
        object.__setattr__(self, "rate", rate)
        builtin = BUILTIN_MEASURES.get(self.measure)
        unit = self.unit or builtin
        if not unit:
            raise PriceInvalid(
                detail=f"{what}: an operator-defined measure needs a unit",
                hint="give the unit, e.g. --unit GiB-month",
            )
        if builtin is not None and unit != builtin:
            raise PriceInvalid(
                detail=f"{what}: the unit of {self.measure} is {builtin}, not {unit}"
            )
        object.__setattr__(self, "unit", unit)
        try:
            rule = MeasureRule(self.rule or (MeasureRule.REQUEST if builtin else "measured"))
        except ValueError as exc:
            raise PriceInvalid(
                detail=f"{what}: rule {self.rule!r} is not one of request, measured, max"
            ) from exc
        if builtin is None and rule is not MeasureRule.MEASURED:
            raise PriceInvalid(
                detail=f"{what}: an operator-defined measure has no request; its rule is measured",
                hint="import its usage with POST /api/v1/billing/usage",
            )
        object.__setattr__(self, "rule", rule)

    @property
    def starts(self) -> datetime | None:
        return None if self.effective_from is None else local_midnight(self.effective_from)


@dataclass(frozen=True, slots=True)
class RateCard:
    """Effective-dated unit rates; a later rate of the same measure replaces the earlier one."""

    rates: tuple[UnitRate, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", tuple(self.rates))
        seen: set[tuple[str, date | None]] = set()
        for rate in self.rates:
            if (rate.measure, rate.effective_from) in seen:
                raise PriceInvalid(
                    detail=f"two unit rates of {rate.measure} from "
                    f"{rate.effective_from or 'the start'}",
                    hint="keep one rate per measure and date",
                )
            seen.add((rate.measure, rate.effective_from))

    @property
    def measures(self) -> list[str]:
        return sorted({r.measure for r in self.rates})

    def segments(
        self, measure: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime, UnitRate]]:
        """The rates of ``measure`` in force between ``start`` and ``end``, split at changes."""
        items = sorted(
            (r for r in self.rates if r.measure == measure),
            key=lambda r: (r.effective_from is not None, r.effective_from or date.min),
        )
        result: list[tuple[datetime, datetime, UnitRate]] = []
        for position, rate in enumerate(items):
            begins = rate.starts
            following = items[position + 1].starts if position + 1 < len(items) else None
            lo = start if begins is None else max(start, begins)
            hi = end if following is None else min(end, following)
            if lo < hi:
                result.append((lo, hi, rate))
        return result

    def rate_at(self, measure: str, instant: datetime) -> tuple[datetime, UnitRate] | None:
        found = self.segments(measure, instant, instant + MICROSECOND)
        return None if not found else (found[0][0], found[0][2])


@dataclass(frozen=True, slots=True)
class MeasuredUsage:
    """An imported quantity of ``measure`` used by an instance from ``start`` to ``end``."""

    tenant: str
    instance_id: str
    measure: str
    start: datetime
    end: datetime
    quantity: Decimal
    service: str | None = None

    def __post_init__(self) -> None:
        where = f"measured {self.measure} of instance {self.instance_id}"
        object.__setattr__(self, "start", require_aware(self.start, f"{where}: from"))
        object.__setattr__(self, "end", require_aware(self.end, f"{where}: to"))
        if self.end <= self.start:
            raise UsageInvalid(detail=f"{where}: 'to' is not after 'from'")
        if isinstance(self.quantity, (float, bool)):
            object.__setattr__(self, "quantity", str(self.quantity))
        try:
            quantity = Decimal(self.quantity)
        except (InvalidOperation, ValueError) as exc:
            raise UsageInvalid(
                detail=f"{where}: quantity {self.quantity!r} is not a number"
            ) from exc
        if not quantity.is_finite() or quantity < 0:
            raise UsageInvalid(detail=f"{where}: quantity {quantity} must be 0 or more")
        object.__setattr__(self, "quantity", quantity)


@dataclass(frozen=True, slots=True)
class RatedUsage:
    """Quantity * rate for one instance, measure and rate: one usage line of a statement."""

    tenant: str
    service: str | None
    instance_id: str
    measure: str
    unit: str
    rule: MeasureRule
    start: datetime
    end: datetime
    quantity: Fraction
    rate: Decimal
    cents: int


@dataclass(slots=True)
class _Piece:
    tenant: str
    service: str | None
    start: datetime
    end: datetime
    requested: Fraction | None = None
    measured: Fraction | None = None


def rate_usage(
    intervals: Iterable[UsageInterval],
    measured: Iterable[MeasuredUsage],
    rates: RateCard,
    period: Period,
    *,
    until: datetime | None = None,
) -> list[RatedUsage]:
    """Every instance's rated usage in ``period``: one entry per instance, measure and rate.

    Requested quantities: cpu cores * hours, memory GiB * hours, storage GiB * the part of the
    month. Measured records count in the period their ``from`` lies in (at the rate then in
    force); a record that starts in the period must end in it. The amount is the exact
    quantity * rate, rounded half away from zero to cents, once per line.
    """
    end = period.end if until is None else min(period.end, until)
    intervals = list(intervals)
    records = [m for m in measured if period.start <= m.start < end]
    for record in records:
        if record.end > period.end:
            raise UsageInvalid(
                detail=f"measured {record.measure} of instance {record.instance_id} runs from "
                f"{record.start.isoformat()} past the end of {period}",
                hint="split measured usage at month boundaries",
            )
    result: list[RatedUsage] = []
    for measure in rates.measures:
        pieces: dict[tuple[str, date], tuple[_Piece, UnitRate]] = {}
        if measure in BUILTIN_MEASURES:
            for interval in intervals:
                amount = _requested(measure, interval)
                if amount is None:
                    continue
                for lo, hi, rate in rates.segments(measure, interval.start, interval.end):
                    us = (hi - lo) // MICROSECOND
                    per = period.microseconds if measure == "storage_gib_months" else _HOUR_US
                    key = (interval.instance_id, rate.effective_from or date.min)
                    piece, _ = pieces.setdefault(
                        key, (_Piece(interval.tenant, interval.service, lo, hi), rate)
                    )
                    piece.start, piece.end = min(piece.start, lo), max(piece.end, hi)
                    piece.requested = (piece.requested or Fraction(0)) + Fraction(amount) * us / per
        for record in records:
            if record.measure != measure:
                continue
            found = rates.rate_at(measure, record.start)
            if found is None:
                continue
            rate = found[1]
            key = (record.instance_id, rate.effective_from or date.min)
            piece, _ = pieces.setdefault(
                key, (_Piece(record.tenant, record.service, record.start, record.end), rate)
            )
            if piece.tenant != record.tenant:
                raise UsageInvalid(
                    detail=f"measured usage of instance {record.instance_id} names tenant "
                    f"{record.tenant}, but the instance belongs to {piece.tenant}"
                )
            piece.service = piece.service or record.service
            piece.start, piece.end = min(piece.start, record.start), max(piece.end, record.end)
            piece.measured = (piece.measured or Fraction(0)) + Fraction(record.quantity)
        for (instance_id, _), (piece, rate) in sorted(pieces.items()):
            quantity = _by_rule(rate.rule, piece)
            if quantity is None:
                continue
            result.append(
                RatedUsage(
                    tenant=piece.tenant,
                    service=piece.service,
                    instance_id=instance_id,
                    measure=measure,
                    unit=rate.unit,
                    rule=rate.rule or MeasureRule.REQUEST,
                    start=piece.start,
                    end=piece.end,
                    quantity=quantity,
                    rate=rate.rate,
                    cents=_cents(quantity * Fraction(rate.rate)),
                )
            )
    return result


def _requested(measure: str, interval: UsageInterval) -> Decimal | None:
    if measure == "cpu_core_hours":
        return interval.cpu
    if measure == "memory_gib_hours":
        return interval.memory
    return interval.storage


def _by_rule(rule: MeasureRule | None, piece: _Piece) -> Fraction | None:
    if rule is MeasureRule.REQUEST:
        return piece.requested
    if rule is MeasureRule.MEASURED:
        return piece.measured
    if piece.requested is None and piece.measured is None:
        return None
    return max(piece.requested or Fraction(0), piece.measured or Fraction(0))


def _cents(value: Fraction) -> int:
    """Half away from zero, like :func:`controlplane.billing.money.round_to_cents`."""
    whole, rest = divmod(value.numerator * 100, value.denominator)
    return whole + (1 if 2 * rest >= value.denominator else 0)
