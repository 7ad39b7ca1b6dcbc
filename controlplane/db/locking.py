"""Take one row for the rest of the transaction before a read-check-write.

A change that checks a version (``If-Match``) or computes the next one from the current
row must read that row under a lock, in the transaction that writes it; otherwise two
writers both see version *n*, both pass, both write *n + 1*, and one change is lost.

PostgreSQL locks the row (``SELECT … FOR UPDATE``). SQLite has no row locks and its
implicit transactions start only at the first write, so a no-op ``UPDATE`` of the row takes
the database's one write lock first; the re-read then sees the last committed version and
no other writer commits before this transaction ends.

This module must not know any domain table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, update
from sqlmodel import Session, SQLModel, select


def lock_row[Row: SQLModel](
    session: Session, model: type[Row], key: Any, *, only_if: ColumnElement[bool] | None = None
) -> Row | None:
    """The row of ``model`` with primary key ``key``, locked and freshly read.

    None when there is no such row, or when it does not satisfy ``only_if``; then nothing
    is locked. With ``only_if`` (say ``generation == <If-Match>``), writers queued behind
    the one that moves the row on are answered as soon as it commits, instead of taking
    the lock one after another only to find the row changed.

    An object already in the session is refreshed in place (``populate_existing``), so
    objects the caller holds show the locked version.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    (pk,) = table.primary_key.columns
    condition = pk == key if only_if is None else (pk == key) & only_if
    statement = select(model).where(condition).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    else:
        session.execute(update(table).where(condition).values({pk.name: pk}))
    return session.exec(statement).first()


def reread[Row: SQLModel](session: Session, model: type[Row], key: Any) -> Row | None:
    """The row as last committed, without a lock (None: gone); refreshes the session's copy."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    (pk,) = table.primary_key.columns
    statement = select(model).where(pk == key).execution_options(populate_existing=True)
    return session.exec(statement).first()
