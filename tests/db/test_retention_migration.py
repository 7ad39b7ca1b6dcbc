"""0012: instances gain ``purge_after`` (retention on delete); existing ones get none, and
the downgrade drops the column again without touching the rest of the row."""

from __future__ import annotations

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
def engine_at_0011(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_at(request, tmp_path, "0011_deletion_protection") as engine:
        yield engine


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("instances")}


def test_existing_instances_are_not_retained_and_downgrade_drops_it(
    engine_at_0011: Engine,
) -> None:
    engine = engine_at_0011
    assert "purge_after" not in _columns(engine)
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
            sa.text("SELECT name, generation, purge_after FROM instances")
        ).all()
    assert [tuple(r) for r in rows] == [("web", 3, None)]

    migrations.downgrade(engine, "0011_deletion_protection")
    assert "purge_after" not in _columns(engine)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT name, generation FROM instances")).all()
    assert [tuple(r) for r in rows] == [("web", 3)]
