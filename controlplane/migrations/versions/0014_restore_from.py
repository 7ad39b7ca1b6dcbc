"""Instances can be created from a backup of another instance

Revision ID: 0014_restore_from
Revises: 0013_target_capabilities
Create Date: 2026-11-30

Existing instances were not restored from anything: the column is null for them, and
nothing is re-rendered by this migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc

revision: str = "0014_restore_from"
down_revision: str | None = "0013_target_capabilities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of instances would cascade into its revisions on SQLite.
    op.add_column("instances", sa.Column("restore_from", JSONDoc, nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE instances DROP COLUMN restore_from")
