"""Targets declare capabilities (``cloudnative-pg``)

Revision ID: 0013_target_capabilities
Revises: 0012_retention
Create Date: 2026-11-30

Existing targets declare none: their instances render as before (a StatefulSet per database).
The object store for backups lives in the target's config JSON, so it needs no column.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc

revision: str = "0013_target_capabilities"
down_revision: str | None = "0012_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (PostgreSQL, SQLite), never a batch copy of the table.
    op.add_column(
        "targets", sa.Column("capabilities", JSONDoc, nullable=False, server_default="[]")
    )


def downgrade() -> None:
    op.execute("ALTER TABLE targets DROP COLUMN capabilities")
