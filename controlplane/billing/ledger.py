"""The statements of a period and the ledger of closed periods: close, reopen, history.

An open period is computed from the current data (:mod:`controlplane.billing.inputs`). A
closed period always answers from its stored document (checked against its digest), never
from a new computation, so it does not change when prices or usage change afterwards. Every
write here is flushed, never committed: the caller commits once, with its audit event, so that
a refused request leaves nothing half-written.

This module must not know about prices or pools as finance edits them (``pricing``), FastAPI
or Typer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.closed_periods import closed_row
from controlplane.billing.errors import (
    PeriodAlreadyClosed,
    PeriodNotClosed,
    StatementDigestMismatch,
)
from controlplane.billing.inputs import load_inputs, trial_grace
from controlplane.billing.invoices import issue_for_closing
from controlplane.billing.metering_store import load_measured, load_rates, with_storage
from controlplane.billing.periods import Period
from controlplane.billing.records import (
    ClosedSetStatus,
    ClosedStatementSet,
)
from controlplane.billing.statements import (
    Reopening,
    StatementSet,
    close_period,
    compute_statements,
    reopen_period,
)


def parse_period(text: str, now: datetime) -> Period:
    """``YYYY-MM``, refusing malformed months and months that have not started."""
    return Period.parse(text, now=now)


def compute(session: Session, period: Period, now: datetime) -> StatementSet:
    """The draft statements of ``period`` from the current data (month to date if running).

    Unit rates and measured usage (own module) are passed only when some rate exists, so a
    period without rates is computed (and digested) exactly as before metering.
    """
    inputs = load_inputs(session, period, now)
    rates = load_rates(session)
    events = inputs.events
    if rates.rates:
        events = with_storage(events, inputs.catalogue)
    return compute_statements(
        period=period,
        tenants=inputs.tenants,
        events=events,
        prices=inputs.prices,
        pools=inputs.pools,
        now=now,
        active_tenants=inputs.active,
        trial_grace=trial_grace(),
        rates=rates if rates.rates else None,
        measured=load_measured(session, period) if rates.rates else (),
    )


def statements(session: Session, period: Period, now: datetime) -> StatementSet:
    """The statements of ``period``: the stored closed set if it is closed, else a draft."""
    row = closed_row(session, period)
    if row is not None:
        return from_document(row.document)
    return compute(session, period, now)


def close(session: Session, period: Period, *, closed_by: str, now: datetime) -> StatementSet:
    """Compute, freeze and store ``period``'s statements (a second close is a conflict)."""
    existing = closed_row(session, period)
    if existing is not None:
        raise PeriodAlreadyClosed(
            detail=f"billing period {period} is already closed (digest {existing.digest}, "
            f"closed by {existing.closed_by} at {existing.closed_at.isoformat()})",
            hint=f"an operator can reopen it with a reason: cityctl billing reopen "
            f'{period} --reason "…"',
        )
    closed = close_period(compute(session, period, now), closed_by=closed_by, at=now)
    assert closed.digest is not None  # close_period always sets it
    session.add(
        ClosedStatementSet(
            period=str(period),
            status=ClosedSetStatus.CLOSED,
            digest=closed.digest,
            document=closed.as_dict(),
            total=closed.totals.total,
            closed_at=now,
            closed_by=closed_by,
        )
    )
    session.flush()
    # Invoices and credit notes are issued in the closing transaction (own module).
    issue_for_closing(session, closed, issued_by=closed_by)
    return closed


def reopen(
    session: Session, period: Period, *, reason: str, reopened_by: str, now: datetime
) -> Reopening:
    """Mark ``period``'s closed set reopened (the row and its document stay, for history)."""
    row = closed_row(session, period)
    if row is None:
        raise PeriodNotClosed(
            detail=f"billing period {period} is not closed; there is nothing to reopen",
            hint="only a closed period can be reopened",
        )
    reopening = reopen_period(
        from_document(row.document), reason=reason, reopened_by=reopened_by, at=now
    )
    row.status = ClosedSetStatus.REOPENED
    row.reopened_at = reopening.at
    row.reopened_by = reopening.reopened_by
    row.reopen_reason = reopening.reason
    session.add(row)
    session.flush()
    return reopening


def history(session: Session, period: Period) -> list[ClosedStatementSet]:
    """Every closing of ``period``, oldest first (reopened ones included)."""
    return list(
        session.exec(
            sm_select(ClosedStatementSet)
            .where(ClosedStatementSet.period == str(period))
            .order_by(col(ClosedStatementSet.closed_at))
        ).all()
    )


def scoped(statement_set: StatementSet, tenant: str) -> StatementSet:
    """Only ``tenant``'s statement and its own shares of the pools (what a tenant role sees)."""
    return replace(
        statement_set,
        statements=tuple(s for s in statement_set.statements if s.tenant.slug == tenant),
        pools=tuple(
            replace(a, shares=tuple(s for s in a.shares if s.tenant == tenant))
            for a in statement_set.pools
        ),
    )


# -- the stored document back to a statement set -------------------------------------------


def from_document(document: dict[str, Any]) -> StatementSet:
    """Rebuild a closed :class:`StatementSet` from its stored JSON and check its digest.

    The digest covers the canonical JSON of the whole document, so a rebuilt set that verifies
    is exactly the one that was closed (and exports of it show exactly that).
    """
    try:
        result = StatementSet.from_document(document)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise StatementDigestMismatch(
            detail=f"the stored statements of {document.get('period')} cannot be read: {exc}",
            hint="restore the closed statements from a backup; never edit them",
        ) from exc
    result.verify()
    return result
