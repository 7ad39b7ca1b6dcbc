"""Every failure of the API as ``application/problem+json`` (RFC 9457).

Domain errors (:class:`ControlPlaneError`) carry their status, title, code, detail,
errors and hint; this module only spells them. Framework and database failures are
translated here too, so that no input can produce a 5xx or an HTML/plain-text error:
bad JSON and schema violations are 422 with field paths, unknown routes 404, integrity
violations 409, values a database refuses 422, an unreachable database 503.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.catalog.models import DNS_LABEL, QUANTITY, SEMVER
from controlplane.errors import ControlPlaneError, ErrorItem

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("controlplane.api")


def problem_response(
    *,
    status: int,
    title: str,
    detail: str,
    code: str,
    errors: Sequence[ErrorItem] = (),
    hint: str | None = None,
    request_id: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://city-platform.be/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [e.as_dict() for e in errors],
        "hint": hint,
        "request_id": request_id,
    }
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def request_id_of(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def from_error(request: Request, exc: ControlPlaneError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="city-platform"'} if exc.status == 401 else None
    return problem_response(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        errors=exc.errors,
        hint=exc.hint,
        request_id=request_id_of(request),
        extra=exc.extra,
        headers=headers,
    )


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


#: What a request-model pattern allows, in words (a regex is never shown to a user).
PATTERN_WORDS: dict[str, str] = {
    DNS_LABEL: (
        "use lower-case letters, digits and hyphens, starting and ending with a letter or digit"
    ),
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "use lower-case letters, digits and hyphens, starting and ending with a letter or digit"
    ),
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "use an e-mail address such as name@gent.be",
    r"^([01][0-9]|2[0-3]):[0-5][0-9]$": "use a time of day as HH:MM, e.g. 22:00",
    r"^[01][0-9]{3}\.[0-9]{3}\.[0-9]{3}$": "use an enterprise number as 0123.456.789",
    QUANTITY: "use a Kubernetes quantity such as 250m, 1, 512Mi or 10Gi",
    r"^[0-9]{5}$": "use exactly five digits (the NIS code), e.g. 44021",
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$": "use text without control characters or line breaks",
    r"^1\.[0-9]{1,2}$": "use a Kubernetes minor version such as 1.33",
    r"^\s*[0-9]+(\.[0-9]+)?%?\s*$": "use a number or a percentage, e.g. 10 or 25%",
    SEMVER: "use a semantic version MAJOR.MINOR.PATCH, e.g. 25.0.6 or 3.0.0-rc.1",
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*$": (
        "use nothing, or DNS labels each followed by a dot, e.g. www."
    ),
    r"^/[A-Za-z0-9._~/%-]*$": "use a URL path starting with '/' (letters, digits and . _ ~ / % -)",
    r"^[-._a-zA-Z0-9]+$": "use letters, digits, '.', '_' and '-'",
    r"^[a-z0-9][a-z0-9._/-]*$": (
        "use lower-case letters, digits, '.', '_', '/' and '-', starting with a letter or digit"
    ),
    r"^[a-z][a-z0-9_]*$": "use lower-case letters, digits and '_', starting with a letter",
}
#: For a pattern nobody described yet: still words, never the regex.
PATTERN_FALLBACK = "has characters or a form that is not allowed here"


def _validation_message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        return PATTERN_WORDS.get(str(pattern), PATTERN_FALLBACK)
    if error.get("type") == "string_too_long":
        limit = (error.get("ctx") or {}).get("max_length")
        return f"use at most {limit} characters"
    if error.get("type") == "string_too_short":
        limit = (error.get("ctx") or {}).get("min_length")
        return f"use at least {limit} character{'' if limit == 1 else 's'}"
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON ({reason})" if reason else "the body is not valid JSON"
    if error.get("type") == "missing":
        return "required"
    return str(error.get("msg", "invalid"))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [ErrorItem(_location(e.get("loc", ())), _validation_message(e)) for e in exc.errors()]
    whole_body = [e for e in exc.errors() if tuple(e.get("loc", ())) == ("body",)]
    if any(e.get("type") == "model_attributes_type" for e in whole_body):
        detail = "The request body must be a JSON object."
        hint: str | None = "Send a JSON object with Content-Type: application/json."
    elif any(e.get("type") == "json_invalid" for e in exc.errors()):
        detail = "The request body is not valid JSON."
        hint = "Send a JSON document with Content-Type: application/json."
    else:
        where = ", ".join(sorted({item.location for item in errors})[:5])
        detail = f"The request is not valid: check {where}."
        hint = "The OpenAPI document at /openapi.json describes every field."
    return problem_response(
        status=422,
        title="Invalid input",
        detail=detail,
        code="invalid",
        errors=errors,
        hint=hint,
        request_id=request_id_of(request),
    )


async def on_control_plane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControlPlaneError)
    if exc.status >= 500:
        log.warning("request failed: %s", exc.detail, extra={"request_id": request_id_of(request)})
    return from_error(request, exc)


async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (bytes that are not UTF-8 JSON): bad input, 422.
        return problem_response(
            status=422,
            title="Invalid input",
            detail="The request body is not valid JSON (it could not be decoded).",
            code="invalid",
            errors=[ErrorItem("body", str(exc.detail))],
            hint="Send UTF-8 JSON with Content-Type: application/json.",
            request_id=request_id_of(request),
        )
    titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    detail = str(exc.detail) if exc.detail else titles.get(exc.status_code, "HTTP error")
    if exc.status_code == 404:
        detail = f"There is no resource at {request.url.path}."
    return problem_response(
        status=exc.status_code,
        title=titles.get(exc.status_code, "HTTP error"),
        detail=detail,
        code={404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error"),
        request_id=request_id_of(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # Domain code catches the conflicts it expects; this is the net under it.
    return problem_response(
        status=409,
        title="Conflict",
        detail="The change conflicts with existing data (a name or reference is already taken).",
        code="conflict",
        hint="Read the resource again and retry with other values.",
        request_id=request_id_of(request),
    )


async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        status=422,
        title="Invalid input",
        detail="A value in the request cannot be stored (too long, out of range, bad characters).",
        code="invalid",
        request_id=request_id_of(request),
    )


async def on_operational_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(
        status=503,
        title="Service unavailable",
        detail="The database is not reachable or busy right now.",
        code="unavailable",
        hint="Retry in a few seconds.",
        request_id=request_id_of(request),
        headers={"Retry-After": "2"},
    )


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", extra={"request_id": request_id_of(request)})
    return problem_response(
        status=500,
        title="Internal error",
        detail="The control plane failed on this request; the operators can find it by request id.",
        code="internal",
        request_id=request_id_of(request),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ControlPlaneError, on_control_plane_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(IntegrityError, on_integrity_error)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(OperationalError, on_operational_error)
    app.add_exception_handler(StatementError, on_data_error)
    app.add_exception_handler(Exception, on_unexpected)
