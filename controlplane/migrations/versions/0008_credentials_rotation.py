"""Instances count rotations of their administrator credential

Revision ID: 0008_credentials_rotation
Revises: 0007_target_grants
Create Date: 2026-11-30

Existing instances start at 0: they render exactly as before (same credentials, same
digests), so nothing is re-applied by this migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_credentials_rotation"
down_revision: str | None = "0007_target_grants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credentials_rotation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("credentials_rotation")
