"""Metering: unit rates, measured usage batches and their records

Revision ID: 0010_metering
Revises: 0009_invoices
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import UTCDateTime

revision: str = "0010_metering"
down_revision: str | None = "0009_invoices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_unit_rates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("measure", sa.String(length=63), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("rate", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("measure", "effective_from", name="uq_billing_unit_rate_from"),
    )
    with op.batch_alter_table("billing_unit_rates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_unit_rates_measure"), ["measure"], unique=False
        )
    op.create_table(
        "billing_usage_batches",
        sa.Column("batch", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("received_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("batch"),
    )
    op.create_table(
        "billing_measured_usage",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=40), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=False),
        sa.Column("measure", sa.String(length=63), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.ForeignKeyConstraint(["batch"], ["billing_usage_batches.batch"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("billing_measured_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_measured_usage_batch"), ["batch"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_billing_measured_usage_start"), ["start"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_measured_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_measured_usage_start"))
        batch_op.drop_index(batch_op.f("ix_billing_measured_usage_batch"))
    op.drop_table("billing_measured_usage")
    op.drop_table("billing_usage_batches")
    with op.batch_alter_table("billing_unit_rates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_unit_rates_measure"))
    op.drop_table("billing_unit_rates")
