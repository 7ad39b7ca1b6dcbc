"""The gate in front of every request: body size, token and role before the body is read.

FastAPI reads and parses a body before any dependency runs, so a route's own checks come
too late to protect the process: a 300 MB body without a token would be buffered and
parsed only to be answered 401, and a read-only role would learn a 422 about a body it may
not send at all. This ASGI middleware answers first:

1. a ``Content-Length`` above the route's limit → 413, nothing read;
2. a write (POST/PUT/PATCH) to an authenticated route without a valid token → 401, nothing
   read (the token is verified in full, by :func:`controlplane.auth.tokens.verify_token`);
3. a role that may not write this resource at all → 403, nothing read;
4. a streamed (chunked) body is counted as it arrives and cut off with 413 at the limit.

The verified principal is kept in the request scope so that the idempotency middleware and
``get_principal`` do not verify the same token again. The route's own check stays the
authority (tenant scoping, finer actions); the role table here only refuses early what that
check would refuse anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.api import problems
from controlplane.auth.errors import InvalidToken
from controlplane.auth.policy import BILLING_WRITES, Action, Principal
from controlplane.auth.tokens import verify_token
from controlplane.errors import ControlPlaneError, ErrorItem, Forbidden
from controlplane.tenants.services import get_tenant

_WRITES = frozenset({"POST", "PUT", "PATCH"})
_PRINCIPAL = "verified_principal"


def _may_write(action: Action) -> Callable[[Principal], bool]:
    return lambda principal: principal.may(action)


#: Who may write under a route template (first matching prefix wins). Coarse on purpose:
#: it only refuses roles that the route would refuse whatever the body says.
WRITE_GUARDS: tuple[tuple[str, Callable[[Principal], bool]], ...] = (
    ("/api/v1/tenants/{tenant}/instances", _may_write(Action.INSTANCE_WRITE)),
    ("/api/v1/tenants", _may_write(Action.TENANT_WRITE)),
    ("/api/v1/catalog", _may_write(Action.CATALOG_WRITE)),
    ("/api/v1/targets", _may_write(Action.TARGET_WRITE)),
    ("/api/v1/tokens", _may_write(Action.TOKEN_WRITE)),
    ("/api/v1/fleet", _may_write(Action.FLEET_WRITE)),
    # Billing changes (routes/billing*.py refine per action: reopen is for operators only).
    ("/api/v1/billing", lambda principal: any(map(principal.may, BILLING_WRITES))),
)

#: Routes whose bodies may be larger than ``max_body_bytes`` (``max_upload_bytes``).
LARGE_BODY_ROUTES = frozenset(
    {("POST", "/api/v1/tenants/import"), ("POST", "/api/v1/catalog/publish")}
)


class BodyTooLarge(Exception):
    """The body grew past the limit while it was streamed (the 413 is already sent)."""


def missing_token() -> InvalidToken:
    return InvalidToken(
        "This endpoint needs a bearer token.",
        hint="Send `Authorization: Bearer cp_…`; `controlplane bootstrap` prints the first.",
    )


def bearer_of(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def cached_principal(scope: Scope, token: str) -> Principal | None:
    """The principal this request's token was already verified as, if any."""
    cached = scope.get("state", {}).get(_PRINCIPAL)
    if isinstance(cached, tuple) and cached[0] == token:
        principal: Principal = cached[1]
        return principal
    return None


def _verify(engine: Engine, token: str, tenant_slug: str | None) -> tuple[Principal, bool]:
    """The principal, and whether the tenant in the path (if any) is visible to it."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            principal = verify_token(session, token)
            if tenant_slug is None or not principal.is_tenant_bound:
                return principal, True
            try:
                tenant = get_tenant(session, tenant_slug)
            except ControlPlaneError:
                return principal, False
            return principal, principal.sees_tenant(tenant.id)
        finally:
            session.rollback()


async def authenticate(
    scope: Scope, engine: Engine, tenant_slug: str | None = None
) -> tuple[Principal, bool]:
    """Verify the bearer of the request (cached in the scope); raises what the API raises."""
    token = bearer_of(scope)
    if token is None:
        raise missing_token()
    cached = cached_principal(scope, token)
    if cached is not None and tenant_slug is None:
        return cached, True
    principal, visible = await anyio.to_thread.run_sync(_verify, engine, token, tenant_slug)
    scope.setdefault("state", {})[_PRINCIPAL] = (token, principal)
    return principal, visible


async def answer_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer ``exc`` as the API's exception handlers would (problem+json)."""
    request = Request(scope)
    if isinstance(exc, ControlPlaneError):
        response = problems.from_error(request, exc)
    elif isinstance(exc, OperationalError):
        response = await problems.on_operational_error(request, exc)
    else:  # pragma: no cover - only the two kinds above are passed in
        raise exc
    await response(scope, receive, send)


class PayloadTooLarge(ControlPlaneError):
    """The request body is too large."""

    status = 413
    title = "Payload too large"
    code = "payload_too_large"


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes.",
        errors=[ErrorItem("body", f"at most {limit} bytes")],
        hint="Send a smaller body; the municipality CSV goes to POST /api/v1/tenants/import.",
    )


class RequestGate:
    """Refuses oversized bodies, missing or invalid tokens and read-only roles before the
    body is read (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: Engine,
        openapi: Callable[[], dict[str, Any]],
        max_body_bytes: int,
        max_upload_bytes: int,
        metrics_on_api_port: bool = True,
    ) -> None:
        self.app = app
        self.engine = engine
        self.openapi = openapi
        self._routes: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.metrics_on_api_port = metrics_on_api_port

    def _route(self, scope: Scope) -> tuple[str | None, dict[str, str]]:
        """The route template of the request and its path parameters (None: no route).

        Matched against the OpenAPI document's paths (FastAPI's own route tree is not a
        public interface): every documented route is covered.
        """
        if self._routes is None:
            self._routes = [
                (compile_path(template)[0], template, frozenset(m.upper() for m in methods))
                for template, methods in self.openapi().get("paths", {}).items()
            ]
        path, method = scope.get("path", ""), scope.get("method", "")
        for regex, template, methods in self._routes:
            match = regex.match(path)
            if match is not None and method in methods:
                return template, match.groupdict()
        return None, {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and not self.metrics_on_api_port:
            # The metrics have their own port (settings.metrics_port): not on the public one.
            response = problems.problem_response(
                status=404,
                title="Not found",
                detail="There is no resource at /metrics.",
                code="not_found",
                hint="Metrics are served on the metrics port (CONTROLPLANE_METRICS_PORT).",
                request_id=problems.request_id_of(Request(scope)),
            )
            await response(scope, receive, send)
            return
        method = scope.get("method", "")
        template, params = self._route(scope)
        large = (method, template) in LARGE_BODY_ROUTES
        limit = self.max_upload_bytes if large else self.max_body_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await answer_error(scope, receive, send, _too_large(limit))
            return
        if method in _WRITES and template is not None and template.startswith("/api/"):
            try:
                principal, visible = await authenticate(scope, self.engine, params.get("tenant"))
            except (ControlPlaneError, OperationalError) as exc:
                await answer_error(scope, receive, send, exc)
                return
            if visible and not _allowed(principal, template):
                refusal = Forbidden(
                    f"The role {principal.role} may not change anything under {template}.",
                    hint="Ask a platform operator if you need this.",
                )
                await answer_error(scope, receive, send, refusal)
                return
        await self._forward(scope, receive, send, limit)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        answered = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        answered = True
                        await answer_error(scope, receive, send, _too_large(limit))
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out already; what the app says after it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not answered:
                raise


def _allowed(principal: Principal, template: str) -> bool:
    for prefix, may in WRITE_GUARDS:
        if template == prefix or template.startswith(prefix + "/"):
            return may(principal)
    return True


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
