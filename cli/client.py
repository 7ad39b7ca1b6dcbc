"""The HTTP client of cityctl: base URL, timeouts, user agent, token, retries, problem+json.

Only idempotent calls are retried (GET, PUT, DELETE, and POSTs that carry an
Idempotency-Key), so a retry can never create something twice.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

from cli import __version__
from cli.config import Context
from cli.errors import CliError, ExitCode, exit_code_for_status

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class ApiClient(httpx.Client):
    def __init__(
        self,
        context: Context,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"cityctl/{__version__}", "Accept": "application/json"}
        if context.token:
            headers["Authorization"] = f"Bearer {context.token}"
        super().__init__(
            base_url=context.server.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )
        self.attempts = attempts

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | str | None = None,
        create: bool = False,
    ) -> httpx.Response:
        """Send a request; raise :class:`CliError` on any failure the user must see.

        ``create=True`` adds an Idempotency-Key so that the POST may be retried safely.
        """
        headers = dict(headers or {})
        if create:
            headers.setdefault("Idempotency-Key", str(uuid.uuid4()))
        retryable = method.upper() in IDEMPOTENT or "Idempotency-Key" in headers
        params = {k: v for k, v in (params or {}).items() if v is not None}
        last_error: Exception | None = None
        for attempt in range(self.attempts if retryable else 1):
            if attempt:
                time.sleep(min(4.0, 0.25 * 2**attempt) * random.random())  # noqa: S311 - jitter
            try:
                response = self.request(
                    method, path, json=json, params=params, headers=headers, content=content
                )
            except httpx.TimeoutException as exc:
                last_error = exc
                continue
            except httpx.TransportError as exc:
                last_error = exc
                continue
            if response.status_code in RETRY_STATUSES and retryable and attempt + 1 < self.attempts:
                continue
            if response.is_error:
                raise problem_error(response)
            return response
        raise CliError(
            f"Cannot reach the server at {self.base_url}: {last_error}.",
            exit_code=ExitCode.SERVER,
            hint="Check the server URL (`cityctl context list`) and that the control plane runs.",
        )

    def get_json(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params).json()

    def list_all(self, path: str, *, limit: int = 500, **params: Any) -> list[dict[str, Any]]:
        """Follow ``next_cursor`` through every page of a list endpoint."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.get_json(path, limit=limit, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def problem_error(response: httpx.Response) -> CliError:
    """Turn an application/problem+json answer into one line plus a hint."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    items = body.get("errors") or []
    if items:
        first = items[0]
        detail = f"{detail} ({first.get('location', '')}: {first.get('message', '')})"
        if len(items) > 1:
            detail += f" and {len(items) - 1} more"
    hint = body.get("hint")
    code = exit_code_for_status(response.status_code)
    if hint is None:
        hint = {
            ExitCode.AUTH: "Check your token and role: `cityctl whoami`, or log in again.",
            ExitCode.NOT_FOUND: "Check the name and --tenant; list what exists with `list`.",
            ExitCode.CONFLICT: "Read the current state with `show` and try again.",
            ExitCode.SERVER: "Try again later; if it persists, tell the platform team.",
        }.get(code, "See `--help` for the expected input.")
    return CliError(f"{detail}", exit_code=code, hint=hint)
