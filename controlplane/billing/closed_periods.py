"""Whether a billing month is closed, and the one refusal of anything dated inside one.

A price, unit rate or measured usage dated inside a closed month would silently not change
its frozen statements, so each is refused the same way (409 ``period_closed``).

This module must not know about HTTP or Typer.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session
from sqlmodel import select as sm_select

from controlplane.billing.errors import PeriodAlreadyClosed
from controlplane.billing.periods import Period
from controlplane.billing.records import ClosedSetStatus, ClosedStatementSet


def closed_row(session: Session, period: Period) -> ClosedStatementSet | None:
    """The closed statement set of ``period``, None while it is open."""
    return session.exec(
        sm_select(ClosedStatementSet).where(
            ClosedStatementSet.period == str(period),
            ClosedStatementSet.status == ClosedSetStatus.CLOSED,
        )
    ).first()


def refuse_closed(session: Session, day: date, what: str) -> None:
    """:class:`PeriodAlreadyClosed` when ``day`` lies in a closed month (``what`` names it)."""
    month = Period(day.year, day.month)
    if closed_row(session, month) is not None:
        raise PeriodAlreadyClosed(
            detail=f"{what} is dated inside the closed billing period {month}; "
            "it would not change its closed statements",
            hint=f"date it in an open month, or reopen the period first: "
            f"cityctl billing reopen {month} --reason '…'",
            extra={"period": str(month)},
        )
