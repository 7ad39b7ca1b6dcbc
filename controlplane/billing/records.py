"""Billing as stored: finance's price entries and cost pools, and closed statement sets.

Price entries and cost pools are effective-dated rows that are only ever added (a new price or
a new pool amount from a date on), so any period can be recomputed as it was. A closed
statement set is stored as its full JSON document with its digest and is never edited: a
reopening marks the row ``reopened`` (with who, when and why) and a later close writes a *new*
row, so the history of every period's closings stays.

This module must not know about FastAPI or Typer; the domain values live in ``models.py``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Date, Index, Numeric, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow

#: Money columns: up to 9,999,999,999.99 euro, whole cents.
MONEY = Numeric(12, 2)


class ClosedSetStatus(StrEnum):
    CLOSED = "closed"
    REOPENED = "reopened"


class PriceRecord(SQLModel, table=True):
    """A monthly price of a service plan from a date on (on top of the catalogue's prices)."""

    __tablename__ = "billing_prices"
    __table_args__ = (
        UniqueConstraint("service", "plan", "effective_from", name="uq_billing_price_from"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    service: str = Field(sa_column=Column(String(63), nullable=False, index=True))
    plan: str = Field(sa_column=Column(String(63), nullable=False))
    monthly_price: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    #: Local (Europe/Brussels) midnight of this day is when the price starts.
    effective_from: date = Field(sa_column=Column(Date, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(200), nullable=False))


class CostPoolRecord(SQLModel, table=True):
    """A monthly shared cost with its sharing key, from a month on.

    The row with the latest ``effective_from`` on or before a period's first day is the pool of
    that period; a row with amount 0.00 ends the pool from its month on.
    """

    __tablename__ = "billing_cost_pools"
    __table_args__ = (UniqueConstraint("name", "effective_from", name="uq_billing_pool_from"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    service: str | None = Field(default=None, sa_column=Column(String(63), nullable=True))
    monthly_amount: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    key: str = Field(sa_column=Column(String(16), nullable=False))
    equal_percent: Decimal | None = Field(
        default=None, sa_column=Column(Numeric(5, 2), nullable=True)
    )
    usage_measure: str = Field(sa_column=Column(String(16), nullable=False))
    #: Always the first day of a month: pools change per billing period.
    effective_from: date = Field(sa_column=Column(Date, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(200), nullable=False))


class ClosedStatementSet(SQLModel, table=True):
    """The frozen statements of one period, as closed. Never updated except to mark a reopen."""

    __tablename__ = "billing_closed_sets"
    __table_args__ = (
        # At most one closed (not reopened) set per period: a second close is a conflict even
        # when two requests race.
        Index(
            "uq_billing_closed_period",
            "period",
            unique=True,
            postgresql_where=text("status = 'closed'"),
            sqlite_where=text("status = 'closed'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    #: ``YYYY-MM``.
    period: str = Field(sa_column=Column(String(7), nullable=False, index=True))
    status: ClosedSetStatus = Field(
        default=ClosedSetStatus.CLOSED, sa_column=Column(String(12), nullable=False)
    )
    digest: str = Field(sa_column=Column(String(80), nullable=False))
    #: ``StatementSet.as_dict()``: the whole closed document, digest included.
    document: dict[str, Any] = Field(sa_column=Column(JSONDoc, nullable=False))
    total: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    closed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    closed_by: str = Field(sa_column=Column(String(200), nullable=False))
    reopened_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    reopened_by: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    reopen_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
