"""Revisions record the storage their volumes were rendered with (volumes never shrink)

Revision ID: 0005_revision_storage
Revises: 0004_fleet
Create Date: 2026-11-30

Existing revisions get the storage of their plan in their published release: before this
revision the renderer used the plan's storage as it was, so that is what they applied.
Revisions whose release or plan cannot be found stay NULL (they count for no floor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc

revision: str = "0005_revision_storage"
down_revision: str | None = "0004_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_revisions = sa.table(
    "revisions",
    sa.column("id", sa.Uuid()),
    sa.column("instance_id", sa.Uuid()),
    sa.column("version", sa.String()),
    sa.column("plan", sa.String()),
    sa.column("storage", sa.String()),
)
_instances = sa.table("instances", sa.column("id", sa.Uuid()), sa.column("service", sa.String()))
_published = sa.table(
    "published_versions",
    sa.column("service", sa.String()),
    sa.column("version", sa.String()),
    sa.column("release", JSONDoc),
)


def _plan_storage(release: Any) -> dict[str, str]:
    plans = release.get("plans") if isinstance(release, dict) else None
    return {
        str(p["name"]): str(p["storage"])
        for p in plans or []
        if isinstance(p, dict) and p.get("name") and p.get("storage")
    }


def upgrade() -> None:
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage", sa.String(length=32), nullable=True))

    bind = op.get_bind()
    storage = {
        (service, version): _plan_storage(release)
        for service, version, release in bind.execute(
            sa.select(_published.c.service, _published.c.version, _published.c.release)
        )
    }
    rows = bind.execute(
        sa.select(
            _revisions.c.id, _instances.c.service, _revisions.c.version, _revisions.c.plan
        ).select_from(_revisions.join(_instances, _instances.c.id == _revisions.c.instance_id))
    ).all()
    for revision_id, service, version, plan in rows:
        size = storage.get((service, version), {}).get(plan)
        if size is not None:
            bind.execute(
                sa.update(_revisions).where(_revisions.c.id == revision_id).values(storage=size)
            )


def downgrade() -> None:
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.drop_column("storage")
