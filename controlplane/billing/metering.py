"""Metering: from usage events to the intervals an instance ran in a plan, inside a period.

Each instance's events are replayed in time order (started → plan_changed … → stopped); every
stretch between two events is an interval in one plan, clipped to the period and, for a month
still running, to ``until`` (month to date). Intervals are aware UTC datetimes, so a month with
a daylight-saving change has its true length; a share of the period is an exact ratio of
microseconds.

This module must not know about prices, pools or the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from controlplane.billing.errors import UsageInvalid
from controlplane.billing.models import UsageEvent, UsageKind
from controlplane.billing.periods import MICROSECOND, Period

_ORDER = {UsageKind.STARTED: 0, UsageKind.PLAN_CHANGED: 1, UsageKind.STOPPED: 2}


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
    into.append(
        UsageInterval(
            instance_id=instance_id,
            tenant=opened.tenant,
            service=opened.service,
            plan=opened.plan,
            start=lo,
            end=hi,
            cpu=opened.cpu,
            memory=opened.memory,
        )
    )
