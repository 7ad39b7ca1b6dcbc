"""Keyset pagination shared by every list: ``limit`` plus an opaque ``cursor``.

A cursor is the sort key of the last item of a page, base64url-encoded JSON. Keyset
(rather than offset) pages stay correct and fast while rows are inserted, and the
cursor reveals nothing a client could rely on. Every key ends with the primary key so
that the order is total.

This module must not know any domain table.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from controlplane.errors import ErrorItem, InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class InvalidCursor(InvalidInput):
    """The pagination cursor is not valid."""

    title = "Invalid cursor"
    code = "invalid_cursor"


@dataclass(frozen=True)
class SortKey:
    """One column of a keyset: the column, how to read its value back, and its direction."""

    column: Any
    attribute: str
    parse: Callable[[Any], Any] = lambda v: v
    descending: bool = False


def uuid_key(column: Any, attribute: str = "id", *, descending: bool = False) -> SortKey:
    return SortKey(column, attribute, lambda v: uuid.UUID(str(v)), descending)


def datetime_key(column: Any, attribute: str, *, descending: bool = False) -> SortKey:
    return SortKey(column, attribute, lambda v: datetime.fromisoformat(str(v)), descending)


def str_key(column: Any, attribute: str) -> SortKey:
    return SortKey(column, attribute, str)


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: Sequence[SortKey]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        return [key.parse(value) for key, value in zip(keys, values, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor(
            "The cursor is not one this list handed out.",
            errors=[ErrorItem("query.cursor", "not a valid cursor")],
            hint="Use the next_cursor of the previous page unchanged, or leave it out.",
        ) from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, not {limit}.",
            errors=[ErrorItem("query.limit", f"must be between 1 and {MAX_LIMIT}")],
        )
    return limit


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    # (a, b, c) > (x, y, z) spelled out, so that mixed directions work on every database.
    clauses: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def paginate[T](
    session: Session,
    statement: SelectOfScalar[T],
    keys: Sequence[SortKey],
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[T]:
    """One page of ``statement`` ordered by ``keys``, and the cursor of the next page."""
    check_limit(limit)
    if cursor:
        statement = statement.where(_after(keys, decode_cursor(cursor, keys)))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    rows = list(session.exec(statement.order_by(*order).limit(limit + 1)).all())
    items: list[T] = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([getattr(last, k.attribute) for k in keys])
    return Page(items=items, next_cursor=next_cursor)


def paginate_items[T](
    items: Iterable[T],
    key: Callable[[T], tuple[str, ...]],
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[T]:
    """One page of a list built in memory (e.g. merged from two sources), same cursor rules.

    ``key`` must give every item a distinct tuple of strings; the order is that tuple's,
    and the cursor is the key of the page's last item, exactly as for a query.
    """
    check_limit(limit)
    ordered = sorted(items, key=key)
    if cursor and ordered:
        width = len(key(ordered[0]))
        after = tuple(decode_cursor(cursor, [SortKey(None, "", str)] * width))
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[:limit]
    next_cursor = encode_cursor(key(page[-1])) if len(ordered) > limit else None
    return Page(items=page, next_cursor=next_cursor)
