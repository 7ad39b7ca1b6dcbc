"""Metering as stored: effective-dated unit rates, imported usage batches and their records.

Unit rates are only ever added (a new rate of a measure from a date on), like prices. Measured
usage arrives in batches: a batch id is unique, the batch keeps the digest of the body it came
with (so a retried import is recognised and a different body under the same id refused), and
its records are never edited.

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, Date, ForeignKey, Numeric, String, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from controlplane.db.types import UTCDateTime, new_id, utcnow


class UnitRateRecord(SQLModel, table=True):
    """The price of one unit of a measure from a date (Brussels midnight) on."""

    __tablename__ = "billing_unit_rates"
    __table_args__ = (
        UniqueConstraint("measure", "effective_from", name="uq_billing_unit_rate_from"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    measure: str = Field(sa_column=Column(String(63), nullable=False, index=True))
    unit: str = Field(sa_column=Column(String(32), nullable=False))
    rule: str = Field(sa_column=Column(String(16), nullable=False))
    rate: Decimal = Field(sa_column=Column(Numeric(14, 6), nullable=False))
    effective_from: date = Field(sa_column=Column(Date, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(200), nullable=False))


class UsageBatchRecord(SQLModel, table=True):
    """One import of measured usage; ``digest`` is the SHA-256 of its canonical body."""

    __tablename__ = "billing_usage_batches"

    batch: str = Field(sa_column=Column(String(100), primary_key=True))
    digest: str = Field(sa_column=Column(String(80), nullable=False))
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    received_by: str = Field(sa_column=Column(String(200), nullable=False))


class MeasuredUsageRecord(SQLModel, table=True):
    """An imported quantity of a measure used by an instance from ``start`` to ``end``."""

    __tablename__ = "billing_measured_usage"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    batch: str = Field(
        sa_column=Column(
            String(100), ForeignKey("billing_usage_batches.batch"), nullable=False, index=True
        )
    )
    position: int = Field(nullable=False)
    tenant: str = Field(sa_column=Column(String(40), nullable=False))
    instance_id: uuid.UUID = Field(sa_column=Column(Uuid(), nullable=False))
    service: str = Field(sa_column=Column(String(63), nullable=False))
    measure: str = Field(sa_column=Column(String(63), nullable=False))
    start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    end: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    quantity: Decimal = Field(sa_column=Column(Numeric(20, 6), nullable=False))
