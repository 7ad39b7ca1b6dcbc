"""Bearer API tokens: create (shown once), verify, revoke.

A token reads ``cp_<prefix>_<secret>``: the prefix is public (it finds the row and names
the token in listings and audit events), the secret is 256 random bits from ``secrets``.
Only the SHA-256 of the whole token is stored — a fast hash is right here because the
secret has full entropy, so there is nothing to brute-force — and comparison is
constant-time. The plain token exists only in the answer to the create call.

This module must not know about HTTP or tenants' master data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from controlplane.auth.errors import InvalidToken, TokenInvalid, TokenNotFound
from controlplane.auth.models import ApiToken, Role
from controlplane.auth.policy import TENANT_ROLES, Principal
from controlplane.db.paging import Page, datetime_key, paginate, uuid_key
from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem

_TOKEN = re.compile(r"^cp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
#: Only refresh ``last_used_at`` this often, so that reads do not write on every request.
_LAST_USED_RESOLUTION = timedelta(minutes=5)
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: the row and the plain token, which is never stored."""

    record: ApiToken
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str | None:
    """The public prefix of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def create_token(
    session: Session,
    *,
    name: str,
    role: Role,
    tenant_id: uuid.UUID | None = None,
    expires_in_days: int | None = None,
    created_by: str | None = None,
) -> IssuedToken:
    """A new token; tenant roles must name a tenant, the others must not."""
    if role in TENANT_ROLES and tenant_id is None:
        raise TokenInvalid(
            f"A {role} token must be bound to one tenant.",
            errors=[ErrorItem("tenant", "required for tenant roles")],
        )
    if role not in TENANT_ROLES and tenant_id is not None:
        raise TokenInvalid(
            f"A {role} token acts across tenants and cannot be bound to one.",
            errors=[ErrorItem("tenant", f"must be empty for role {role}")],
        )
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise TokenInvalid(
            f"expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}.",
            errors=[ErrorItem("expires_in_days", f"between 1 and {MAX_EXPIRY_DAYS}")],
        )
    prefix = secrets.token_hex(6)
    token = f"cp_{prefix}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    record = ApiToken(
        prefix=prefix,
        token_hash=hash_token(token),
        name=name,
        role=role,
        tenant_id=tenant_id,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(record)
    session.flush()
    return IssuedToken(record=record, token=token)


def check_token_form(token: str) -> str:
    """The prefix of a well-formed token; :class:`InvalidToken` (no database needed) else."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidToken(
            "The bearer token is malformed.", hint="Tokens look like cp_<prefix>_<secret>."
        )
    return match.group(1)


def verify_token(session: Session, token: str, *, now: datetime | None = None) -> Principal:
    """The principal of a valid token; :class:`InvalidToken` for anything else.

    The message does not say *why* a token is refused beyond expired/revoked, so that
    guessing learns nothing.
    """
    prefix = check_token_form(token)
    record = session.exec(select(ApiToken).where(ApiToken.prefix == prefix)).first()
    if record is None or not hmac.compare_digest(record.token_hash, hash_token(token)):
        raise InvalidToken("The bearer token is not valid.")
    now = now or utcnow()
    if record.revoked_at is not None:
        raise InvalidToken("The bearer token was revoked.", hint="Ask an operator for a new one.")
    if record.expires_at is not None and record.expires_at <= now:
        raise InvalidToken("The bearer token has expired.", hint="Ask an operator for a new one.")
    if record.last_used_at is None or now - record.last_used_at > _LAST_USED_RESOLUTION:
        record.last_used_at = now
        session.add(record)
        session.commit()
    return Principal(
        role=Role(record.role),
        tenant_id=record.tenant_id,
        token_name=record.name,
        token_id=record.id,
        token_prefix=record.prefix,
    )


def get_token(session: Session, token_id: uuid.UUID) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None:
        raise TokenNotFound(f"There is no API token with id {token_id}.")
    return record


def list_tokens(session: Session, *, limit: int = 50, cursor: str | None = None) -> Page[ApiToken]:
    keys = [datetime_key(col(ApiToken.created_at), "created_at"), uuid_key(col(ApiToken.id))]
    statement = select(ApiToken)
    return paginate(session, statement, keys, limit=limit, cursor=cursor)


def revoke_token(session: Session, token_id: uuid.UUID) -> ApiToken:
    """Revoke a token (idempotent: revoking twice keeps the first time)."""
    record = get_token(session, token_id)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.add(record)
        session.flush()
    return record


def active_operator_tokens(session: Session) -> list[ApiToken]:
    now = utcnow()
    rows = session.exec(
        select(ApiToken).where(ApiToken.role == Role.OPERATOR, col(ApiToken.revoked_at).is_(None))
    ).all()
    return [r for r in rows if r.expires_at is None or r.expires_at > now]
