"""The edge of the API (issue 13, items 5, 8, 11): idempotent replays, body size, source
IPs, request ids, answer headers and the role check before the body.

Each test failed on the code before the fix. Bodies are streamed from generators that count
what the server pulled, so "never buffered" is asserted by bytes read, not by timing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from controlplane.api.app import create_app
from controlplane.api.middleware import _canonical
from controlplane.auth.models import ApiToken, AuditEvent, IdempotencyRecord
from controlplane.commands.server import uvicorn_config
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.settings import Settings
from controlplane.tenants.models import Tenant
from tests.api.conftest import World

TENANTS = "/api/v1/tenants"
MB = 1024 * 1024


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path, server_secret="test-secret", embedded_worker=False, **extra)  # type: ignore[arg-type]


def _tenants(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(Tenant)).one())


def _prefix(token: str) -> str:
    return token.split("_")[1]


def _digest(path: str, body: bytes) -> str:
    endpoint = f"POST {path}"
    return hashlib.sha256(endpoint.encode() + b"\n" + _canonical(body)).hexdigest()


# -- item 5: idempotency -------------------------------------------------------------------


def test_a_forged_token_with_a_known_prefix_gets_401_not_the_stored_answer(
    client: TestClient, world: World
) -> None:
    body = {"name": "Sint-Niklaas", "nis_code": "46021"}
    headers = {**world.auth("operator"), "Idempotency-Key": "k-forged"}
    assert client.post(TENANTS, json=body, headers=headers).status_code == 201
    token = world.tokens["operator"]
    forged = f"cp_{_prefix(token)}_{'A' * 43}"
    assert forged != token
    replay = client.post(
        TENANTS,
        json=body,
        headers={"Authorization": f"Bearer {forged}", "Idempotency-Key": "k-forged"},
    )
    assert replay.status_code == 401, replay.text
    assert "sint-niklaas" not in replay.text
    assert replay.headers["content-type"] == "application/problem+json"


def test_a_revoked_token_gets_401_not_the_stored_answer(
    client: TestClient, world: World, engine: Engine
) -> None:
    body = {"name": "Sint-Niklaas", "nis_code": "46021"}
    headers = {**world.auth("operator"), "Idempotency-Key": "k-revoked"}
    assert client.post(TENANTS, json=body, headers=headers).status_code == 201
    with Session(engine) as s:
        row = s.exec(
            select(ApiToken).where(ApiToken.prefix == _prefix(world.tokens["operator"]))
        ).one()
        row.revoked_at = utcnow()
        s.add(row)
        s.commit()
    replay = client.post(TENANTS, json=body, headers=headers)
    assert replay.status_code == 401, replay.text
    assert "sint-niklaas" not in replay.text


def _claim(engine: Engine, token: str, key: str, body: bytes, age: timedelta) -> None:
    with Session(engine) as s:
        s.add(
            IdempotencyRecord(
                scope=_prefix(token),
                key=key,
                endpoint=f"POST {TENANTS}",
                request_hash=_digest(TENANTS, body),
                created_at=utcnow() - age,
            )
        )
        s.commit()


def test_a_claim_left_by_a_killed_server_is_taken_over(
    client: TestClient, world: World, engine: Engine
) -> None:
    body = b'{"name": "Sint-Niklaas", "nis_code": "46021"}'
    headers = {
        **world.auth("operator"),
        "Idempotency-Key": "k-stale",
        "Content-Type": "application/json",
    }
    _claim(engine, world.tokens["operator"], "k-stale", body, timedelta(minutes=30))
    taken = client.post(TENANTS, content=body, headers=headers)
    assert taken.status_code == 201, taken.text
    replay = client.post(TENANTS, content=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"


def test_a_fresh_claim_still_answers_in_progress(
    client: TestClient, world: World, engine: Engine
) -> None:
    body = b'{"name": "Sint-Niklaas", "nis_code": "46021"}'
    _claim(engine, world.tokens["operator"], "k-running", body, timedelta(seconds=5))
    running = client.post(
        TENANTS,
        content=body,
        headers={**world.auth("operator"), "Idempotency-Key": "k-running"},
    )
    assert running.status_code == 409
    assert running.json()["code"] == "idempotency_in_progress"
    assert _tenants(engine) == 2


def test_keys_older_than_the_retention_are_purged(
    client: TestClient, world: World, engine: Engine
) -> None:
    with Session(engine) as s:
        s.add(
            IdempotencyRecord(
                scope=_prefix(world.tokens["operator"]),
                key="k-old",
                endpoint=f"POST {TENANTS}",
                request_hash="0" * 64,
                status_code=201,
                response_body="{}",
                created_at=utcnow() - timedelta(hours=25),
            )
        )
        s.commit()
    headers = {**world.auth("operator"), "Idempotency-Key": "k-new"}
    created = client.post(TENANTS, json={"name": "Lier", "nis_code": "12021"}, headers=headers)
    assert created.status_code == 201, created.text
    with Session(engine) as s:
        keys = set(s.exec(select(IdempotencyRecord.key)).all())
    assert keys == {"k-new"}


def test_a_keyed_post_during_a_database_outage_answers_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: every connection is refused, as when the database is down.
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    app = create_app(_settings(tmp_path), engine=engine)
    token = f"cp_{'a' * 12}_{'B' * 43}"
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no database
    answer = client.post(
        TENANTS,
        json={"name": "Lier", "nis_code": "12021"},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-outage"},
    )
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "2"


# -- item 8: request size ------------------------------------------------------------------


class _Counted:
    """A request body streamed in chunks (the same chunk object, nothing allocated)."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total = total
        self.chunk = b"{" + b" " * (chunk - 1)
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += len(self.chunk)
            yield self.chunk


def _stream(app: FastAPI, path: str, body: _Counted, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post(
                path, content=body, headers={"Content-Type": "application/json", **headers}
            )
            await response.aread()
            return response

    return anyio.run(go)


def test_a_300_mb_body_without_a_token_is_refused_before_it_is_read(app: FastAPI) -> None:
    body = _Counted(300 * MB)
    answer = _stream(app, TENANTS, body, {})
    assert answer.status_code in (401, 413), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert body.pulled <= len(body.chunk), f"the server pulled {body.pulled} bytes"


def test_a_streamed_body_over_the_limit_is_cut_off_with_413(
    app: FastAPI, world: World, engine: Engine
) -> None:
    body = _Counted(300 * MB)
    answer = _stream(app, TENANTS, body, world.auth("operator"))
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "payload_too_large"
    assert body.pulled <= MB + 2 * len(body.chunk), f"the server pulled {body.pulled} bytes"
    assert _tenants(engine) == 2


def test_a_declared_length_over_the_limit_is_413_with_a_token(
    client: TestClient, world: World, engine: Engine
) -> None:
    answer = client.post(
        TENANTS,
        content=b" " * (MB + 1),
        headers={**world.auth("operator"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["errors"][0]["location"] == "body"
    assert "/api/v1/tenants/import" in problem["hint"]
    assert _tenants(engine) == 2


def test_the_import_takes_a_larger_body(client: TestClient, world: World) -> None:
    csv = "nis_code,name_nl,province,population,population_year\n" + "#" * (2 * MB)
    answer = client.post(
        f"{TENANTS}/import",
        content=csv.encode(),
        headers={**world.auth("operator"), "Content-Type": "text/csv"},
    )
    assert answer.status_code != 413


# -- item 11: source IP, request id, headers, role before body -----------------------------


class _Served:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=0))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _source_ip_of_a_create(engine: Engine, tmp_path: Path, world: World, **extra: Any) -> str:
    app = create_app(_settings(tmp_path, **extra), engine=engine)
    with _Served(app, app.state.settings) as url:
        answer = httpx.post(
            f"{url}{TENANTS}",
            json={"name": "Lier", "nis_code": "12021"},
            headers={**world.auth("operator"), "X-Forwarded-For": "203.0.113.7"},
        )
    assert answer.status_code == 201, answer.text
    with Session(engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "tenant.create")).one()
        return str(event.source_ip)


def test_x_forwarded_for_from_loopback_is_not_believed_by_default(
    engine: Engine, tmp_path: Path, world: World
) -> None:
    assert _source_ip_of_a_create(engine, tmp_path, world) == "127.0.0.1"


def test_x_forwarded_for_is_believed_from_a_configured_proxy(
    engine: Engine, tmp_path: Path, world: World
) -> None:
    source = _source_ip_of_a_create(engine, tmp_path, world, forwarded_allow_ips="127.0.0.1")
    assert source == "203.0.113.7"


def test_a_request_id_with_a_trailing_newline_is_replaced(
    app: FastAPI, world: World, engine: Engine
) -> None:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post(
                TENANTS,
                json={"name": "Lier", "nis_code": "12021"},
                headers={**world.auth("operator"), "X-Request-ID": "abc\n"},
            )

    answer = anyio.run(go)
    assert answer.status_code == 201, answer.text
    given = answer.headers["x-request-id"]
    assert given != "abc\n"
    assert "\n" not in given
    with Session(engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "tenant.create")).one()
    assert event.request_id == given


def test_every_answer_says_nosniff_and_authenticated_ones_no_store(
    client: TestClient, world: World
) -> None:
    public = client.get("/healthz")
    assert public.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in public.headers.get("cache-control", "")
    for answer in (
        client.get(TENANTS, headers=world.auth("operator")),
        client.get(f"{TENANTS}/gent", headers=world.auth("tenant-viewer")),
        client.post(TENANTS, json={}, headers={"Authorization": "Bearer nope"}),
    ):
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        assert "no-store" in answer.headers["cache-control"], answer.url


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("tenant-viewer", f"{TENANTS}/gent/instances"),
        ("finance", TENANTS),
        ("tenant-admin", TENANTS),
        ("tenant-viewer", "/api/v1/billing/prices"),
    ],
)
@pytest.mark.parametrize("body", [b'{"bogus": 1}', b"{not json", b"[]"])
def test_a_role_that_may_not_write_gets_403_before_its_body_is_validated(
    client: TestClient, world: World, engine: Engine, who: str, path: str, body: bytes
) -> None:
    answer = client.post(
        path, content=body, headers={**world.auth(who), "Content-Type": "application/json"}
    )
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert _tenants(engine) == 2


def test_a_role_that_may_write_still_gets_422_for_a_bad_body(
    client: TestClient, world: World
) -> None:
    answer = client.post(
        f"{TENANTS}/gent/instances", json={"bogus": 1}, headers=world.auth("tenant-admin")
    )
    assert answer.status_code == 422


def test_metrics_are_not_on_the_api_port_when_they_have_their_own(
    engine: Engine, tmp_path: Path
) -> None:
    with_port = TestClient(create_app(_settings(tmp_path, metrics_port=9090), engine=engine))
    assert with_port.get("/metrics").status_code == 404
    default = TestClient(create_app(_settings(tmp_path), engine=engine))
    assert default.get("/metrics").status_code == 200


def test_the_chart_limits_bodies_at_the_ingress_and_keeps_metrics_off_it() -> None:
    from tests.helm.conftest import render

    got = render({"ingress": {"enabled": True, "hosts": ["api.example.be"]}})
    ingress = next(iter(got.of_kind("Ingress")))
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
    backends = [
        p["backend"]["service"]["port"]
        for r in ingress["spec"]["rules"]
        for p in r["http"]["paths"]
    ]
    assert backends == [{"name": "http"}]
    config = next(iter(got.of_kind("ConfigMap")))["data"]
    assert config["CONTROLPLANE_METRICS_PORT"] == "9090"
    assert config["CONTROLPLANE_FORWARDED_ALLOW_IPS"] == ""
