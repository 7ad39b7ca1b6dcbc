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
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "deletion_protection", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("deletion_protection")
