"""Migrations from empty to head give exactly the schema of the models, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from controlplane import migrations
from controlplane.db.engine import make_engine
from controlplane.tables import metadata
from tests.factories import PostgresTemplate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    pg: PostgresTemplate = request.getfixturevalue("postgres_template")
    with pg.empty() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_head_matches_the_models(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    assert _diff(empty_engine) == []
    assert migrations.is_up_to_date(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= set(metadata.tables)


def test_downgrade_to_base_and_up_again(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    migrations.downgrade(empty_engine, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    migrations.upgrade(empty_engine)
    assert _diff(empty_engine) == []


def test_live_name_index_is_partial(empty_engine: Engine) -> None:
    migrations.upgrade(empty_engine)
    indexes = {i["name"]: i for i in inspect(empty_engine).get_indexes("instances")}
    index = indexes["uq_instances_live_name"]
    assert index["unique"]
    where = index.get("dialect_options", {})
    assert any("deleted_at" in str(v) for v in where.values()), index
