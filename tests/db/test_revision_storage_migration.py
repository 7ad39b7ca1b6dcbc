"""0005: revisions recorded before it get the storage of their plan, so the storage floor
(volumes never shrink) holds for instances that changed plan before the upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import migrations
from controlplane.catalog.records import PublishedVersion
from controlplane.db.types import JSONDoc, UTCDateTime
from controlplane.provisioning.volumes import storage_floor
from controlplane.tenants.models import Tenant
from tests.db.conftest import engine_at, insert_at_schema
from tests.factories import demo_release


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_at_0004(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_at(request, tmp_path, "0004_fleet") as engine:
        yield engine


def test_existing_revisions_get_their_plans_storage(engine_at_0004: Engine) -> None:
    engine = engine_at_0004
    release = demo_release("1.0.0")
    plans = [
        p.model_copy(update={"storage": size})
        for p, size in zip(release.plans, ("5Gi", "20Gi"), strict=True)
    ]
    release = release.model_copy(update={"plans": plans})
    tenant = Tenant(slug="gent", name="Gent", nis_code="44021")
    with Session(engine) as session:
        insert_at_schema(session, tenant)
        session.add(
            PublishedVersion(
                service=release.name,
                version=release.version.version,
                release=release.model_dump(mode="json"),
                digest=release.digest,
            )
        )
        session.commit()
        tenant_id = tenant.id
    # The instances table as it was at 0004 (the model has columns added since).
    instances = sa.table(
        "instances",
        *(sa.column(name, sa.String()) for name in ("name", "service", "version", "plan")),
        *(sa.column(name, sa.String()) for name in ("target", "namespace", "phase")),
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("parameters", JSONDoc),
        sa.column("conditions", JSONDoc),
        *(sa.column(name, sa.Integer()) for name in ("generation", "observed_generation")),
        sa.column("current_revision", sa.Integer()),
        sa.column("deletion_requested", sa.Boolean()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    instance_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(instances).values(
                id=instance_id,
                tenant_id=tenant_id,
                name="web",
                service=release.name,
                version="1.0.0",
                plan="small",
                target="local",
                namespace="gent-web",
                phase="Pending",
                parameters={},
                conditions=[],
                generation=1,
                observed_generation=0,
                current_revision=0,
                deletion_requested=False,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    revisions = sa.table(
        "revisions",
        sa.column("id", sa.Uuid()),
        sa.column("instance_id", sa.Uuid()),
        sa.column("number", sa.Integer()),
        sa.column("generation", sa.Integer()),
        sa.column("version", sa.String()),
        sa.column("plan", sa.String()),
        sa.column("parameters", JSONDoc),
        sa.column("digest", sa.String()),
        sa.column("inventory", JSONDoc),
        sa.column("outcome", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    history = ((1, "1.0.0", "small"), (2, "1.0.0", "large"), (3, "0.9.0", "small"))
    with engine.begin() as connection:
        for number, version, plan in history:
            connection.execute(
                sa.insert(revisions).values(
                    id=uuid.uuid4(),
                    instance_id=instance_id,
                    number=number,
                    generation=number,
                    version=version,
                    plan=plan,
                    parameters={},
                    digest="sha256:x",
                    inventory={},
                    outcome="applied",
                    created_at=datetime.now(UTC),
                )
            )

    migrations.upgrade(engine)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT number, storage FROM revisions ORDER BY number")
        ).all()
    # Version 0.9.0 was never published here: its revision counts for no floor.
    assert [tuple(r) for r in rows] == [(1, "5Gi"), (2, "20Gi"), (3, None)]
    with Session(engine) as session:
        assert storage_floor(session, instance_id) == "20Gi"
