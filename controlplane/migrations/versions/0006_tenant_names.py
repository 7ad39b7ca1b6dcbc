"""Names the outside world sees are unique across tenants

(namespaces per target, host names, granted domains)

Revision ID: 0006_tenant_names
Revises: 0005_revision_storage
Create Date: 2026-11-30

Existing instances keep the namespace stored in their row (the older ``<tenant>-<instance>``;
new ones get ``<tenant>--<instance>``). Live instances get the host name they answer on
today: their ``hostname`` parameter, else the default of the frozen templates,
``<instance>-<tenant>.<platform domain>`` (only for services whose release declares a
``hostname`` parameter), so that nothing they render changes.

Two live instances that already share a namespace on one target, or a host name, are the
damage this revision prevents; the unique indexes cannot be built over them, and guessing
which one is the victim is not a migration's job. So the upgrade stops and names them:
delete (or, for host names, change) one of each pair with the current version, then run the
upgrade again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc, UTCDateTime

revision: str = "0006_tenant_names"
down_revision: str | None = "0005_revision_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The platform domain the renderer used when this revision was written (frozen here:
#: a migration must not change with later code).
_PLATFORM_DOMAIN = "apps.city-platform.local"

_instances = sa.table(
    "instances",
    sa.column("id", sa.Uuid()),
    sa.column("tenant_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("service", sa.String()),
    sa.column("version", sa.String()),
    sa.column("parameters", JSONDoc),
    sa.column("target", sa.String()),
    sa.column("namespace", sa.String()),
    sa.column("hostname", sa.String()),
    sa.column("deleted_at", UTCDateTime()),
)
_tenants = sa.table("tenants", sa.column("id", sa.Uuid()), sa.column("slug", sa.String()))
_published = sa.table(
    "published_versions",
    sa.column("service", sa.String()),
    sa.column("version", sa.String()),
    sa.column("release", JSONDoc),
)


class LegacyNameCollision(RuntimeError):
    """Live instances already share a namespace or host name; the upgrade cannot continue."""


def upgrade() -> None:
    op.create_table(
        "tenant_domains",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain"),
    )
    with op.batch_alter_table("tenant_domains", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_domains_tenant_id"), ["tenant_id"], unique=False
        )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hostname", sa.String(length=253), nullable=True))

    _backfill_hostnames()
    _refuse_collisions()

    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(
            "uq_instances_live_namespace",
            ["target", "namespace"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "uq_instances_live_hostname",
            ["hostname"],
            unique=True,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )


def _declares_hostname(release: Any) -> bool:
    parameters = release.get("parameters") if isinstance(release, dict) else None
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    return isinstance(properties, dict) and "hostname" in properties


def _backfill_hostnames() -> None:
    bind = op.get_bind()
    declares = {
        (service, version): _declares_hostname(release)
        for service, version, release in bind.execute(
            sa.select(_published.c.service, _published.c.version, _published.c.release)
        )
    }
    rows = bind.execute(
        sa.select(
            _instances.c.id,
            _instances.c.name,
            _instances.c.service,
            _instances.c.version,
            _instances.c.parameters,
            _tenants.c.slug,
        )
        .select_from(_instances.join(_tenants, _tenants.c.id == _instances.c.tenant_id))
        .where(_instances.c.deleted_at.is_(None))
    ).all()
    for instance_id, name, service, version, parameters, slug in rows:
        explicit = parameters.get("hostname") if isinstance(parameters, dict) else None
        if isinstance(explicit, str) and explicit:
            hostname: str | None = explicit
        elif declares.get((service, version), False):
            hostname = f"{name}-{slug}.{_PLATFORM_DOMAIN}"
        else:
            hostname = None
        if hostname is not None:
            bind.execute(
                sa.update(_instances)
                .where(_instances.c.id == instance_id)
                .values(hostname=hostname[:253])
            )


def _refuse_collisions() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _tenants.c.slug,
            _instances.c.name,
            _instances.c.target,
            _instances.c.namespace,
            _instances.c.hostname,
        )
        .select_from(_instances.join(_tenants, _tenants.c.id == _instances.c.tenant_id))
        .where(_instances.c.deleted_at.is_(None))
    ).all()
    namespaces: dict[tuple[str, str], list[str]] = defaultdict(list)
    hostnames: dict[str, list[str]] = defaultdict(list)
    for slug, name, target, namespace, hostname in rows:
        namespaces[(target, namespace)].append(f"{slug}/{name}")
        if hostname:
            hostnames[hostname].append(f"{slug}/{name}")
    problems = [
        f"namespace {namespace} on target {target}: {', '.join(sorted(owners))}"
        for (target, namespace), owners in sorted(namespaces.items())
        if len(owners) > 1
    ] + [
        f"host name {hostname}: {', '.join(sorted(owners))}"
        for hostname, owners in sorted(hostnames.items())
        if len(owners) > 1
    ]
    if problems:
        raise LegacyNameCollision(
            "Live instances (tenant/instance) already share a namespace or host name; "
            "they overwrite each other's objects or routes: "
            + "; ".join(problems)
            + ". Delete one instance of each group (or give it another `hostname` "
            "parameter) with the current version (`cityctl instance delete` / "
            "`cityctl instance update`), then run the upgrade again."
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_instances_live_hostname",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "uq_instances_live_namespace",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_column("hostname")
    with op.batch_alter_table("tenant_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_domains_tenant_id"))
    op.drop_table("tenant_domains")
