"""Alembic migrations of the control plane's database, run from code.

The configuration lives here rather than in an ``alembic.ini`` so that an installed
wheel (``controlplane migrate``, the Helm hook Job) needs no file next to it. The schema
itself is defined by the SQLModel tables of each domain; the revisions in ``versions/``
must produce exactly that schema (``tests/db/test_migrations.py`` checks it on SQLite and
PostgreSQL).

This module must not know about any domain, FastAPI or Typer.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that migrates through ``engine``'s connections."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    # Alembic interpolates '%' in options; the URL is only informative, the engine is passed on.
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=True).replace("%", "%%")
    )
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_script_only_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def _script_only_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return config
