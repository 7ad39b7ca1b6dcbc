"""Database fixtures (shared with the other suites through tests.factories)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

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
