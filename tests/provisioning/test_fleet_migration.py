"""The fleet migration produces exactly the fleet tables of the models, up and down,
on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import controlplane.tables  # noqa: F401 - registers every table
from controlplane import migrations
from controlplane.db.engine import make_engine
from tests.factories import POSTGRES_URL, postgres_enabled

FLEET_TABLES = {"fleet_plans", "fleet_plan_items", "fleet_runs", "fleet_run_items"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    if not postgres_enabled():
        pytest.skip("CONTROLPLANE_TEST_POSTGRES=off")
    name = f"cp_fleet_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(POSTGRES_URL).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fleet_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, SQLModel.metadata)
    return [d for d in diffs if "fleet" in repr(d)]


def test_fleet_migration_matches_the_models_and_downgrades(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= FLEET_TABLES
    assert _fleet_differences(empty_engine) == []
    migrations.downgrade(empty_engine, "0003_billing")
    assert not FLEET_TABLES & set(inspect(empty_engine).get_table_names())
    migrations.upgrade(empty_engine)
    assert _fleet_differences(empty_engine) == []
