"""ASGI middleware of the API: request ids, metrics and idempotent creates.

Written as plain ASGI (not ``BaseHTTPMiddleware``) to stay cheap on every request.
Nothing here logs headers or bodies, so that tokens never reach a log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.api.gate import answer_error, authenticate
from controlplane.api.problems import PROBLEM_JSON
from controlplane.auth.models import IdempotencyRecord
from controlplane.db.types import utcnow
from controlplane.errors import ControlPlaneError

log = logging.getLogger("controlplane.api")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_PURGE_EVERY_SECONDS = 60.0
#: Response headers kept with a stored idempotent answer.
_REPLAYED_HEADERS = {b"content-type", b"etag", b"location", b"x-warnings"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def _dry_run(scope: Scope) -> bool:
    """A ``?dryRun=`` request keeps nothing, so its answer must not become the key's answer."""
    query = scope.get("query_string", b"")
    return any(k == "dryRun" for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))


class Metrics:
    """The Prometheus instruments of one app (one registry per app, so tests can make many)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "controlplane_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "controlplane_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``) and counts it by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        # fullmatch: with match and ``$`` a trailing newline would pass into the audit log.
        request_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        authenticated = _header(scope, b"authorization") is not None
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                if authenticated and not any(k.lower() == b"cache-control" for k, _ in headers):
                    # An answer to a token is that token's view: no shared cache keeps it.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


def _no_store(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"cache-control" and b"no-store" in v.lower() for k, v in headers)


def _canonical(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return body


def _problem(status: int, title: str, detail: str, code: str, request_id: str | None) -> bytes:
    return json.dumps(
        {
            "type": f"https://city-platform.be/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "errors": [{"location": "header.Idempotency-Key", "message": detail}],
            "hint": None,
            "request_id": request_id,
        }
    ).encode()


class IdempotencyMiddleware:
    """Replays the stored answer of a POST sent again with the same ``Idempotency-Key``.

    Keys are scoped to the token's public prefix and bound to the endpoint and the
    canonical body: same key + same request → the first answer again (with
    ``Idempotent-Replayed: true``); same key + another request → 422; a request still
    running under the key → 409. Only successful answers are kept, so a failed attempt
    can be retried with the same key. The token is verified before anything is looked
    up; a claim older than ``claim_timeout`` (its server died) is taken over, and keys
    are forgotten after ``retention`` (purged by the next keyed request, at most once a
    minute).
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: Engine,
        *,
        claim_timeout: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(hours=24),
    ) -> None:
        self.app = app
        self.engine = engine
        self.claim_timeout = claim_timeout
        self.retention = retention
        self._last_purge = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        if key is None or scope.get("method") != "POST" or _dry_run(scope):
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            await self._send(
                send,
                422,
                _problem(
                    422,
                    "Invalid input",
                    "The Idempotency-Key must be 1 to 200 visible ASCII characters.",
                    "invalid",
                    request_id,
                ),
            )
            return
        # The token is verified in full (hash, expiry, revocation) before any lookup, so a
        # forged or revoked token with a known prefix never sees a stored answer. The
        # RequestGate has usually done it already (the principal is cached in the scope).
        try:
            principal, _ = await authenticate(scope, self.engine)
        except (ControlPlaneError, OperationalError) as exc:
            await answer_error(scope, receive, send, exc)
            return
        prefix = principal.token_prefix or principal.token_name
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        endpoint = f"POST {scope.get('path', '')}"[:300]
        digest = hashlib.sha256(endpoint.encode() + b"\n" + _canonical(body)).hexdigest()
        try:
            claim = await anyio.to_thread.run_sync(self._claim, prefix, key, endpoint, digest)
        except OperationalError as exc:
            await answer_error(scope, receive, send, exc)
            return
        if isinstance(claim, IdempotencyRecord) and claim.response_body is None:
            # The first answer was marked no-store (it showed a secret once, e.g. a new
            # API token): it was not kept, so it cannot be replayed, and doing the request
            # again would create a second one.
            await self._send(
                send,
                409,
                _problem(
                    409,
                    "Conflict",
                    "The request with this Idempotency-Key already succeeded; its answer "
                    "held a secret that is shown only once and was not kept.",
                    "idempotency_answer_not_kept",
                    request_id,
                ),
            )
            return
        if isinstance(claim, IdempotencyRecord):
            headers = [(k.encode(), v.encode()) for k, v in claim.response_headers.items()]
            headers.append((b"idempotent-replayed", b"true"))
            await self._send(
                send, claim.status_code or 200, (claim.response_body or "").encode(), headers
            )
            return
        if claim is not None:
            status, detail, code = claim
            title = "Conflict" if status == 409 else "Invalid input"
            await self._send(send, status, _problem(status, title, detail, code, request_id))
            return

        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": []}

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            try:
                await anyio.to_thread.run_sync(self._finish, prefix, key, captured)
            except OperationalError:
                # The answer went out; the claim expires after claim_timeout.
                log.warning("could not record the idempotent answer (database unavailable)")

    def _purge(self, session: Session, now: datetime) -> None:
        """Forget keys older than the retention (at most once a minute per process)."""
        if time.monotonic() - self._last_purge < _PURGE_EVERY_SECONDS:
            return
        self._last_purge = time.monotonic()
        session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.created_at) < now - self.retention
            )
        )
        session.commit()

    def _claim(
        self, scope: str, key: str, endpoint: str, digest: str
    ) -> IdempotencyRecord | tuple[int, str, str] | None:
        """The stored answer, a refusal (status, detail, code), or None: we own the key now."""
        with Session(self.engine, expire_on_commit=False) as session:
            now = utcnow()
            self._purge(session, now)
            row = session.exec(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            ).first()
            if row is None:
                session.add(
                    IdempotencyRecord(scope=scope, key=key, endpoint=endpoint, request_hash=digest)
                )
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    return (
                        409,
                        "A request with this Idempotency-Key is still running.",
                        "idempotency_in_progress",
                    )
                return None
            if row.endpoint != endpoint or row.request_hash != digest:
                return (
                    422,
                    "This Idempotency-Key was already used for a different request.",
                    "idempotency_key_reused",
                )
            if row.status_code is None:
                if row.created_at <= now - self.claim_timeout and self._take_over(
                    session, row, now
                ):
                    # The claim of a request that never finished (a killed server).
                    return None
                return (
                    409,
                    "A request with this Idempotency-Key is still running.",
                    "idempotency_in_progress",
                )
            return row

    @staticmethod
    def _take_over(session: Session, row: IdempotencyRecord, now: datetime) -> bool:
        """Claim a stale row again; only one of several racing requests wins."""
        result = session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.id) == row.id,
                col(IdempotencyRecord.status_code).is_(None),
                col(IdempotencyRecord.created_at) == row.created_at,
            )
            .values(created_at=now)
        )
        session.commit()
        return bool(getattr(result, "rowcount", 0) == 1)

    def _finish(self, scope: str, key: str, captured: dict[str, Any]) -> None:
        with Session(self.engine) as session:
            where = (col(IdempotencyRecord.scope) == scope, col(IdempotencyRecord.key) == key)
            if 200 <= captured["status"] < 300:
                row = session.exec(select(IdempotencyRecord).where(*where)).first()
                if row is not None:
                    row.status_code = captured["status"]
                    # A no-store answer (a token shown once) never goes to the database:
                    # it would keep the secret in plain text. None marks "not kept".
                    row.response_body = (
                        None
                        if _no_store(captured["headers"])
                        else b"".join(captured["body"]).decode("utf-8", "replace")
                    )
                    row.response_headers = {
                        k.decode("latin-1"): v.decode("latin-1")
                        for k, v in captured["headers"]
                        if k.lower() in _REPLAYED_HEADERS
                    }
                    session.add(row)
            else:
                session.execute(delete(IdempotencyRecord).where(*where))
            session.commit()

    @staticmethod
    async def _send(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = headers or [(b"content-type", PROBLEM_JSON.encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
