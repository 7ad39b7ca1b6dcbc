"""Billing: finance's price entries and cost pools, closed statement sets

Revision ID: 0003_billing
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc, UTCDateTime

revision: str = "0003_billing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_prices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=False),
        sa.Column("plan", sa.String(length=63), nullable=False),
        sa.Column("monthly_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service", "plan", "effective_from", name="uq_billing_price_from"),
    )
    with op.batch_alter_table("billing_prices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_prices_service"), ["service"], unique=False)

    op.create_table(
        "billing_cost_pools",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=True),
        sa.Column("monthly_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("equal_percent", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("usage_measure", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "effective_from", name="uq_billing_pool_from"),
    )
    with op.batch_alter_table("billing_cost_pools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_cost_pools_name"), ["name"], unique=False)

    op.create_table(
        "billing_closed_sets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("document", JSONDoc, nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("closed_by", sa.String(length=200), nullable=False),
        sa.Column("reopened_at", UTCDateTime(), nullable=True),
        sa.Column("reopened_by", sa.String(length=200), nullable=True),
        sa.Column("reopen_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("billing_closed_sets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_closed_sets_period"), ["period"], unique=False)
        # At most one closed (not reopened) set per period, even when two closes race.
        batch_op.create_index(
            "uq_billing_closed_period",
            ["period"],
            unique=True,
            postgresql_where=sa.text("status = 'closed'"),
            sqlite_where=sa.text("status = 'closed'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_closed_sets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_billing_closed_period",
            postgresql_where=sa.text("status = 'closed'"),
            sqlite_where=sa.text("status = 'closed'"),
        )
        batch_op.drop_index(batch_op.f("ix_billing_closed_sets_period"))
    op.drop_table("billing_closed_sets")
    with op.batch_alter_table("billing_cost_pools", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_cost_pools_name"))
    op.drop_table("billing_cost_pools")
    with op.batch_alter_table("billing_prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_prices_service"))
    op.drop_table("billing_prices")
