"""Maintenance windows: whether a tenant's window is open now, and when it next opens.

A window is ``{"days": [...], "start": "HH:MM", "end": "HH:MM"}`` in Europe/Brussels local
time, stored on the tenant. Time is always the ``now`` handed in, never read here.

This module must not know about plans, runs, instances or the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from controlplane.errors import ErrorItem
from controlplane.provisioning.fleet.errors import FleetPlanInvalid

#: Maintenance windows are local time in Flanders.
BRUSSELS = ZoneInfo("Europe/Brussels")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(text: str, location: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError) as exc:
        raise FleetPlanInvalid(
            f"Maintenance window time {text!r} is not HH:MM.",
            errors=[ErrorItem(location, "expected HH:MM, e.g. 22:00")],
        ) from exc


def window_open(window: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether ``now`` lies inside the maintenance window (Europe/Brussels).

    ``{}``/None = any time. ``days`` empty = every day. A window whose end is before its
    start runs past midnight and belongs to the day it starts (``sat 22:00-06:00`` includes
    Sunday 03:00); start equal to end means the whole day.
    """
    if not window:
        return True
    days = [str(d).lower()[:3] for d in window.get("days") or DAYS]
    start = _clock(str(window.get("start", "00:00")), "maintenance_window.start")
    end = _clock(str(window.get("end", "00:00")), "maintenance_window.end")
    local = now.astimezone(BRUSSELS)
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    moment = local.time().replace(second=0, microsecond=0)
    if start == end:
        return today in days
    if start < end:
        return today in days and start <= moment < end
    return (today in days and moment >= start) or (yesterday in days and moment < end)


def next_opening(window: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """When the window next opens (``now`` if open); None if it never does."""
    if window_open(window, now):
        return now
    assert window  # an empty window is always open
    days = [str(d).lower()[:3] for d in window.get("days") or DAYS]
    start = _clock(str(window.get("start", "00:00")), "maintenance_window.start")
    local = now.astimezone(BRUSSELS)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if DAYS[day.weekday()] not in days:
            continue
        opening = datetime.combine(day, start, tzinfo=BRUSSELS)
        if opening > local:
            return opening
    return None
