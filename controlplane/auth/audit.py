"""The audit log: who changed what, when, from where, under which request id.

Every change writes one event in the same transaction as the change, so an event exists
exactly when the change does. Details never carry secrets: values under keys that look
like credentials are replaced before they are stored.

This module must not know about HTTP; the adapter hands over an :class:`AuditContext`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from controlplane.db.paging import Page, datetime_key, paginate, uuid_key

_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential", "private_key", "api_key")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class AuditContext:
    """Where a change comes from: the actor and the request."""

    actor: str
    request_id: str | None = None
    source_ip: str | None = None


def redact(value: Any) -> Any:
    """``value`` with every credential-looking entry replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if any(word in str(key).lower() for word in _SECRET_WORDS)
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def record(
    session: Session,
    context: AuditContext,
    *,
    action: str,
    resource: str,
    tenant_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
    outcome: str = "success",
) -> AuditEvent:
    event = AuditEvent(
        actor=context.actor,
        action=action,
        resource=resource,
        tenant_id=tenant_id,
        request_id=context.request_id,
        source_ip=context.source_ip,
        details=redact(_jsonable(details or {})),
        outcome=outcome,
    )
    session.add(event)
    session.flush()
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def list_events(
    session: Session,
    *,
    tenant_id: uuid.UUID | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEvent]:
    """Newest first."""
    statement = select(AuditEvent)
    if tenant_id is not None:
        statement = statement.where(AuditEvent.tenant_id == tenant_id)
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if action:
        statement = statement.where(AuditEvent.action == action)
    if since:
        statement = statement.where(col(AuditEvent.at) >= since)
    if until:
        statement = statement.where(col(AuditEvent.at) < until)
    keys = [
        datetime_key(col(AuditEvent.at), "at", descending=True),
        uuid_key(col(AuditEvent.id), descending=True),
    ]
    return paginate(session, statement, keys, limit=limit, cursor=cursor)
