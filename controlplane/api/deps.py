"""Dependencies of the routes: session, principal, audit context, paging, If-Match.

Aliases (``SessionDep``, ``PrincipalDep`` …) keep route signatures short and typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.auth.audit import AuditContext
from controlplane.auth.errors import InvalidToken
from controlplane.auth.policy import Principal
from controlplane.auth.tokens import verify_token
from controlplane.db.paging import DEFAULT_LIMIT, MAX_LIMIT
from controlplane.errors import ErrorItem, PreconditionFailed
from controlplane.provisioning.admission import ParameterCheck
from controlplane.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token: `cp_<prefix>_<secret>`.")
_ETAG = re.compile(r'^(?:W/)?"([0-9]{1,10})"$')


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    with Session(get_engine(request), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            # Whatever the route did not commit is not kept.
            session.rollback()


SessionDep = Annotated[Session, Depends(get_session)]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise InvalidToken(
            "This endpoint needs a bearer token.",
            hint="Send `Authorization: Bearer cp_…`; `controlplane bootstrap` prints the first.",
        )
    return verify_token(session, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_audit_context(request: Request, principal: PrincipalDep) -> AuditContext:
    client = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    return AuditContext(actor=principal.actor, request_id=request_id, source_ip=client)


AuditDep = Annotated[AuditContext, Depends(get_audit_context)]


def get_parameter_check(request: Request) -> ParameterCheck:
    check: ParameterCheck = request.app.state.check_parameters
    return check


ParameterCheckDep = Annotated[ParameterCheck, Depends(get_parameter_check)]

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (at most {MAX_LIMIT}).")
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=1000, description="The `next_cursor` of the previous page."),
]
DEFAULT_PAGE = DEFAULT_LIMIT


def parse_if_match(value: str | None) -> int | None:
    """The generation/version an ``If-Match`` header asks for; None = no precondition."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise PreconditionFailed(
            f"If-Match {value!r} is not an ETag of this API.",
            errors=[ErrorItem("header.If-Match", 'expected an ETag such as "3"')],
            hint="Send back the ETag header of your last read unchanged.",
        )
    return int(match.group(1))


IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=100,
        description="The ETag of your last read; the change is refused if it moved on.",
    ),
]


def etag(number: int) -> str:
    return f'"{number}"'
