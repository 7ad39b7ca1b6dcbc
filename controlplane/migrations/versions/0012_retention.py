"""Deleted instances can be retained (data kept) until a purge date

Revision ID: 0012_retention
Revises: 0011_deletion_protection
Create Date: 2026-11-30

Existing rows get no purge date (none of them is retained); nothing is re-applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import UTCDateTime

revision: str = "0012_retention"
down_revision: str | None = "0011_deletion_protection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (PostgreSQL, SQLite): a batch operation may copy and drop the
    # instances table, and on SQLite dropping it deletes the revisions, usage events and
    # requests that reference it (ON DELETE CASCADE).
    op.add_column("instances", sa.Column("purge_after", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (PostgreSQL, SQLite >= 3.35), for the same reason.
    op.execute("ALTER TABLE instances DROP COLUMN purge_after")
