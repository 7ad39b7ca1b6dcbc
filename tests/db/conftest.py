"""Database fixtures (shared with the other suites through tests.factories)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from controlplane import migrations
from controlplane.db.engine import make_engine
from tests.factories import (  # noqa: F401 (fixtures)
    PostgresTemplate,
    database_url,
    engine,
    postgres_template,
    sqlite_template,
)


@contextmanager
def engine_at(request: pytest.FixtureRequest, tmp_path: Path, revision: str) -> Iterator[Engine]:
    """A database of the fixture's kind (``request.param``: sqlite or postgres) migrated up
    to ``revision`` only, for tests of the migrations that follow it."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        migrations.upgrade(engine, revision)
        yield engine
        engine.dispose()
        return
    pg: PostgresTemplate = request.getfixturevalue("postgres_template")
    with pg.empty() as url:
        engine = make_engine(url)
        migrations.upgrade(engine, revision)
        yield engine
        engine.dispose()


def insert_at_schema(session: Session, row: SQLModel) -> None:
    """Insert ``row`` with only the columns its table has in the database now.

    Migration tests start from an old revision, while the models have the columns later
    migrations add; inserting through the ORM would name columns the old table lacks.
    """
    table = type(row).__table__  # type: ignore[attr-defined]
    present = {c["name"] for c in sa.inspect(session.connection()).get_columns(table.name)}
    values = {k: v for k, v in row.model_dump().items() if k in present}
    session.execute(sa.insert(table).values(**values))
