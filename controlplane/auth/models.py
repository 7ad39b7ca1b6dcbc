"""API tokens and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from controlplane.db.types import JSONDoc, StrEnumText, UTCDateTime, new_id, utcnow


class Role(StrEnum):
    OPERATOR = "operator"
    TENANT_ADMIN = "tenant-admin"
    TENANT_VIEWER = "tenant-viewer"
    FINANCE = "finance"


class ApiToken(SQLModel, table=True):
    """A bearer token. Only its SHA-256 hash is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    #: Public prefix of the token (``cp_<prefix>_<secret>``), for lookup and listing.
    prefix: str = Field(sa_column=Column(String(16), unique=True, nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(max_length=100)
    role: Role = Field(sa_column=Column(StrEnumText(Role, 16), nullable=False))
    #: Set for tenant roles only.
    tenant_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tenants.id"), nullable=True, index=True)
    )
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )


class AuditEvent(SQLModel, table=True):
    """Who changed what, when, from where (every change writes one)."""

    __tablename__ = "audit_events"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )
    actor: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    action: str = Field(sa_column=Column(String(80), nullable=False, index=True))
    #: What was acted on, e.g. ``instance:gent/formulieren``.
    resource: str = Field(sa_column=Column(String(300), nullable=False))
    tenant_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tenants.id"), nullable=True, index=True)
    )
    request_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    source_ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    #: What changed (never secrets).
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))
    outcome: str = Field(default="success", sa_column=Column(Text, nullable=False))


class IdempotencyRecord(SQLModel, table=True):
    """The stored answer to a create request sent with an ``Idempotency-Key`` header.

    Keys are scoped to the credential (the token's public prefix), so two clients never
    see each other's answers. A row without ``status_code`` is a request still running.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    #: Public prefix of the token that sent the request (never the token itself).
    scope: str = Field(sa_column=Column(String(32), nullable=False))
    key: str = Field(sa_column=Column(String(200), nullable=False))
    #: ``METHOD path``, so that one key cannot be replayed against another endpoint.
    endpoint: str = Field(sa_column=Column(String(300), nullable=False))
    #: SHA-256 of the canonical request body.
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_headers: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONDoc, nullable=False)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )
