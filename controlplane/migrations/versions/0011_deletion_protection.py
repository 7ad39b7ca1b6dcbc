"""Instances can be protected against deletion

Revision ID: 0011_deletion_protection
Revises: 0010_metering
Create Date: 2026-11-30

Existing instances start unprotected (as they were): nothing is re-rendered or re-applied
by this migration, and a plan that declares ``deletion_protection`` protects the instances
created on it, or changed to it, from now on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_deletion_protection"
down_revision: str | None = "0010_metering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (PostgreSQL, SQLite): a batch operation may copy and drop the
    # instances table, and on SQLite dropping it deletes the revisions, usage events and
    # requests that reference it (ON DELETE CASCADE).
    op.add_column(
        "instances",
        sa.Column("deletion_protection", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (PostgreSQL, SQLite >= 3.35), for the same reason.
    op.execute("ALTER TABLE instances DROP COLUMN deletion_protection")
