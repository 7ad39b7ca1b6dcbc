"""Dependencies of the routes: session, principal, audit context, paging, If-Match.

Aliases (``SessionDep``, ``PrincipalDep`` …) keep route signatures short and typed.

FastAPI runs every sync dependency (and a sync generator's start and end separately) in the
thread pool; each hop costs a hand-over of the GIL, which is what dominates the latency of
a short read under load. So dependencies that touch no database are ``async def`` (they
run inline on the event loop), and the session is an async generator that only creates the
``Session`` (no I/O: it connects lazily) and leaves the thread pool for its clean-up, which
does talk to the database. The hottest reads (instance list and show) go further with
:func:`read_in_one_hop`: token check and route body in a single trip to the pool.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.api.gate import cached_principal, missing_token
from controlplane.auth.audit import AuditContext
from controlplane.auth.errors import InvalidToken
from controlplane.auth.policy import Principal
from controlplane.auth.tokens import check_token_form, verify_token
from controlplane.db.paging import DEFAULT_LIMIT, MAX_LIMIT
from controlplane.errors import ErrorItem, PreconditionFailed
from controlplane.provisioning.admission import ParameterCheck
from controlplane.provisioning.fleet.planning import RendererFor
from controlplane.rendering import Renderer
from controlplane.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token: `cp_<prefix>_<secret>`.")
_ETAG = re.compile(r'^(?:W/)?"([0-9]{1,10})"$')


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


_CLEANUP: RunVar[anyio.CapacityLimiter] = RunVar("city-platform.session-cleanup")


def _cleanup_limiter() -> anyio.CapacityLimiter:
    """Threads of their own (per event loop) for rolling back what a route left open.

    A route that failed while holding a row lock (a 412 after ``SELECT … FOR UPDATE``)
    releases it here. If this waited for the shared thread pool, whose threads may all be
    routes waiting for that very lock, nothing would ever move again.
    """
    try:
        return _CLEANUP.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(16)
        _CLEANUP.set(limiter)
        return limiter


def _discard(session: Session) -> None:
    # Whatever the route did not commit is not kept.
    try:
        session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    session = Session(get_engine(request), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            # Rolling back talks to the database: off the event loop, and shielded so that
            # a client hanging up cannot leave the connection checked out.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_discard, session, limiter=_cleanup_limiter())
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def _missing_token() -> InvalidToken:
    return missing_token()


def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise _missing_token()
    # Writes were verified by the RequestGate before their body was read: not twice.
    cached = cached_principal(request.scope, credentials.credentials)
    return cached or verify_token(session, credentials.credentials)


async def get_bearer(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The bearer token if present and well-formed (401 otherwise); not yet verified.

    Checked on the event loop, before the query is validated, so that a missing or
    malformed token is a 401 as on every other route.
    """
    if credentials is None:
        raise _missing_token()
    check_token_form(credentials.credentials)
    return credentials.credentials


BearerDep = Annotated[str, Depends(get_bearer)]


async def read_in_one_hop[T](
    request: Request, token: str, work: Callable[[Session, Principal], T]
) -> T:
    """Verify ``token`` and run ``work`` with a session, in one trip to the thread pool.

    The same session, transaction and checks as ``SessionDep`` + ``PrincipalDep``, minus
    two GIL hand-overs. Only for reads: whatever ``work`` does not commit is rolled back.
    """
    engine = get_engine(request)

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session:
            try:
                return work(session, verify_token(session, token))
            finally:
                session.rollback()

    return await anyio.to_thread.run_sync(run)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_audit_context(request: Request, principal: PrincipalDep) -> AuditContext:
    client = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    return AuditContext(actor=principal.actor, request_id=request_id, source_ip=client)


AuditDep = Annotated[AuditContext, Depends(get_audit_context)]


async def get_parameter_check(request: Request) -> ParameterCheck:
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
    match = _ETAG.fullmatch(value.strip())
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


_renderers_lock = threading.Lock()


def preview_renderers(request: Request) -> RendererFor:
    """Renderers for previews and dry runs, cached on the app.

    A preview compares object digests of two renders of the same instance; generated
    credentials are equal on both sides for any server secret, so previews (and dry runs,
    whose Secret values are redacted anyway) use a random one of this process and never
    touch the real secret.
    """
    state = request.app.state
    with _renderers_lock:
        if not hasattr(state, "fleet_renderers"):
            state.fleet_renderers = {}
            state.fleet_preview_secret = secrets.token_bytes(32)
    cache: dict[str, Renderer] = state.fleet_renderers

    def renderer_for(kubernetes_version: str) -> Renderer:
        with _renderers_lock:
            renderer = cache.get(kubernetes_version)
            if renderer is None:
                renderer = Renderer(
                    server_secret=state.fleet_preview_secret,
                    kubernetes_version=kubernetes_version,
                )
                cache[kubernetes_version] = renderer
            return renderer

    return renderer_for
