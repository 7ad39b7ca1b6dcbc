"""Sessions bound to one engine, for adapters (API dependencies, commands, workers).

This module must not know any domain table or web framework.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, text
from sqlmodel import Session


def open_session(engine: Engine) -> Iterator[Session]:
    """Yield one session per unit of work; uncommitted changes are rolled back at the end.

    Callers commit explicitly, so that a failing request never half-commits.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


def database_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
