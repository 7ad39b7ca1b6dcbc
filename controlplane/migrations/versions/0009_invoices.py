"""Invoices: tenant postal address, the invoice number series, issued documents, VAT rules

Revision ID: 0009_invoices
Revises: 0008_credentials_rotation
Create Date: 2026-11-30

Enterprise numbers already stored as ``0207.451.227`` are normalised to their ten digits
(``0207451227``); they are shown with dots again. Existing tenants get country ``BE``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc, UTCDateTime

revision: str = "0009_invoices"
down_revision: str | None = "0008_credentials_rotation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("street", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("postal_code", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("city", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("country", sa.String(length=2), nullable=False, server_default="BE")
        )
    op.execute(
        "UPDATE tenants SET enterprise_number = "
        "replace(replace(enterprise_number, '.', ''), ' ', '') "
        "WHERE enterprise_number IS NOT NULL"
    )

    op.create_table(
        "billing_invoice_series",
        sa.Column("series", sa.String(length=16), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series"),
    )
    op.execute("INSERT INTO billing_invoice_series (series, last_number) VALUES ('invoices', 0)")

    op.create_table(
        "billing_invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("tenant", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("credits", sa.String(length=10), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("total_excl_vat", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_vat", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_incl_vat", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("payment_reference", sa.String(length=21), nullable=False),
        sa.Column("statement_digest", sa.String(length=80), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("document", JSONDoc, nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_invoices_period"), ["period"], unique=False)
        batch_op.create_index(batch_op.f("ix_billing_invoices_tenant"), ["tenant"], unique=False)

    op.create_table(
        "billing_vat_rules",
        sa.Column("subject", sa.String(length=140), nullable=False),
        sa.Column("rate", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("exemption_code", sa.String(length=32), nullable=True),
        sa.Column("exemption_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )


def downgrade() -> None:
    op.drop_table("billing_vat_rules")
    with op.batch_alter_table("billing_invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_invoices_tenant"))
        batch_op.drop_index(batch_op.f("ix_billing_invoices_period"))
    op.drop_table("billing_invoices")
    op.drop_table("billing_invoice_series")
    # Plain ALTER TABLE … DROP COLUMN (PostgreSQL, SQLite >= 3.35): a batch operation would
    # copy and drop the tenants table, which the foreign keys of instances refuse.
    for column in ("country", "city", "postal_code", "street"):
        op.execute(f"ALTER TABLE tenants DROP COLUMN {column}")
