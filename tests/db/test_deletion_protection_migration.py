"""0011: instances gain ``deletion_protection``; existing ones start unprotected, and the
downgrade drops the column again without touching the rest of the row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import migrations
from controlplane.provisioning.models import Instance
from controlplane.tenants.models import Tenant
from tests.db.conftest import engine_at, insert_at_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_at(request, tmp_path, "0010_metering") as engine:
        yield engine


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("instances")}


def test_existing_instances_start_unprotected_and_downgrade_drops_it(
    engine_at_0010: Engine,
) -> None:
    engine = engine_at_0010
    assert "deletion_protection" not in _columns(engine)
    gent = Tenant(slug="gent", name="Gent", nis_code="44021")
    with Session(engine) as session:
        insert_at_schema(session, gent)
        insert_at_schema(
            session,
            Instance(
                tenant_id=gent.id,
                name="web",
                service="demo",
                version="1.0.0",
                plan="small",
                target="local",
                namespace="gent--web",
                generation=3,
            ),
        )
        session.commit()

    migrations.upgrade(engine)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT name, generation, deletion_protection FROM instances")
        ).all()
    assert [(n, g, bool(p)) for n, g, p in rows] == [("web", 3, False)]
    # New rows written without the column (an old process during a rolling upgrade) too.
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO instances (id, tenant_id, name, service, version, plan, parameters,"
                " target, namespace, generation, deletion_requested, credentials_rotation,"
                " phase, observed_generation, conditions, current_revision, created_at,"
                " updated_at) SELECT :id, tenant_id, 'api', service, version, plan, parameters,"
                " target, 'gent--api', 1, deletion_requested, 0, phase, 0, conditions, 0,"
                " created_at, updated_at FROM instances WHERE name = 'web'"
            ),
            # Hex: how the Uuid type stores it on SQLite, and accepted by PostgreSQL.
            {"id": uuid.uuid4().hex},
        )
        protected = dict(
            connection.execute(sa.text("SELECT name, deletion_protection FROM instances")).all()
        )
    assert {k: bool(v) for k, v in protected.items()} == {"web": False, "api": False}

    migrations.downgrade(engine, "0010_metering")
    assert "deletion_protection" not in _columns(engine)
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT name FROM instances ORDER BY name")).all()
    assert [n for (n,) in names] == ["api", "web"]
