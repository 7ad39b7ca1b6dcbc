"""Invoices as stored: the gap-free number series, issued documents and VAT categories.

An issued invoice or credit note is one row holding its whole JSON document and the digest of
that document; a row is inserted once and never updated. A change to a closed period is
corrected by a credit note (a new row referencing the invoice it reverses) and a new invoice.

The series is one counter row per series, locked in the closing transaction: a number is
taken and used in the same transaction, so a rolled-back close gives its numbers back and two
concurrent closes queue on the row (no gaps, no duplicates).

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Date, Integer, Numeric, String, Text, Uuid
from sqlmodel import Field, SQLModel

from controlplane.billing.records import MONEY
from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow

#: The one series of invoices and credit notes.
INVOICE_SERIES = "invoices"


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceSeries(SQLModel, table=True):
    """The last number used in a series (0: none yet)."""

    __tablename__ = "billing_invoice_series"

    series: str = Field(sa_column=Column(String(16), primary_key=True))
    last_number: int = Field(sa_column=Column(Integer, nullable=False))


class InvoiceRecord(SQLModel, table=True):
    """One issued invoice or credit note (never updated)."""

    __tablename__ = "billing_invoices"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    #: Ten digits, e.g. ``0000000042``: also the base of the structured communication.
    number: str = Field(sa_column=Column(String(10), unique=True, nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    #: ``YYYY-MM``.
    period: str = Field(sa_column=Column(String(7), nullable=False, index=True))
    tenant: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    tenant_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    #: The invoice a credit note reverses (None for an invoice).
    credits: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    issue_date: date = Field(sa_column=Column(Date, nullable=False))
    due_date: date = Field(sa_column=Column(Date, nullable=False))
    total_excl_vat: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    total_vat: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    total_incl_vat: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    payment_reference: str = Field(sa_column=Column(String(21), nullable=False))
    #: The digest of the closed statement set the document was issued from.
    statement_digest: str = Field(sa_column=Column(String(80), nullable=False))
    digest: str = Field(sa_column=Column(String(80), nullable=False))
    document: dict[str, Any] = Field(sa_column=Column(JSONDoc, nullable=False))
    issued_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    issued_by: str = Field(sa_column=Column(String(200), nullable=False))


class VatRuleRecord(SQLModel, table=True):
    """The VAT category of a price line: a plan, a pool, or every line of a service.

    ``subject`` is ``plan:<service>/<plan>``, ``pool:<name>`` or ``service:<service>``.
    Either ``rate`` (a percentage) or ``exemption_code`` (an EN 16931 VATEX code) is set.
    """

    __tablename__ = "billing_vat_rules"

    subject: str = Field(sa_column=Column(String(140), primary_key=True))
    rate: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 2), nullable=True))
    exemption_code: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    exemption_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(200), nullable=False))
