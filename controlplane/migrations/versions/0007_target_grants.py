"""Operators grant targets per tenant

Revision ID: 0007_target_grants
Revises: 0006_tenant_names
Create Date: 2026-11-30

Existing deployments keep working: every tenant is granted the targets its live instances
use, its own ``default_target`` and the platform default target of today (explicitly, so
that moving the default later does not take a target away from a tenant that uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import UTCDateTime

revision: str = "0007_target_grants"
down_revision: str | None = "0006_tenant_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANTED_BY = "migration 0007_target_grants"


def upgrade() -> None:
    op.create_table(
        "target_grants",
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("target_id", "tenant_id"),
    )
    with op.batch_alter_table("target_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_target_grants_tenant_id"), ["tenant_id"], unique=False)
    _grant_what_is_in_use()


def _grant_what_is_in_use() -> None:
    bind = op.get_bind()
    targets = sa.table(
        "targets",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("is_default", sa.Boolean()),
    )
    tenants = sa.table(
        "tenants", sa.column("id", sa.Uuid()), sa.column("default_target", sa.String())
    )
    instances = sa.table(
        "instances",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("target", sa.String()),
        sa.column("deleted_at", UTCDateTime()),
    )
    grants = sa.table(
        "target_grants",
        sa.column("target_id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("granted_by", sa.String()),
        sa.column("granted_at", UTCDateTime()),
    )
    rows = bind.execute(sa.select(targets)).all()
    by_name = {row.name: row.id for row in rows}
    defaults = [row.id for row in rows if row.is_default]
    wanted: set[tuple[object, object]] = set()
    for tenant_id, default_target in bind.execute(sa.select(tenants)).all():
        wanted.update((target_id, tenant_id) for target_id in defaults)
        if default_target in by_name:
            wanted.add((by_name[default_target], tenant_id))
    live = sa.select(instances.c.tenant_id, instances.c.target).where(
        instances.c.deleted_at.is_(None)
    )
    for tenant_id, target in bind.execute(live.distinct()).all():
        if target in by_name:
            wanted.add((by_name[target], tenant_id))
    if wanted:
        now = datetime.now(UTC)
        bind.execute(
            grants.insert(),
            [
                {"target_id": t, "tenant_id": n, "granted_by": GRANTED_BY, "granted_at": now}
                for t, n in sorted(wanted, key=str)
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("target_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_target_grants_tenant_id"))
    op.drop_table("target_grants")
