"""API tokens are never kept in plain text: not in the database (tokens, audit events,
idempotency records), not in logs."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.security.conftest import World

TABLES = ("api_tokens", "audit_events", "idempotency_keys")


def _stored(engine: Engine) -> str:
    with engine.connect() as c:
        return "\n".join(str(row) for t in TABLES for row in c.execute(text(f"SELECT * FROM {t}")))


def test_a_created_token_is_kept_nowhere_in_plain_text(
    client: TestClient, world: World, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {**world.auth("operator"), "Idempotency-Key": "create-ci-token"}
    body = {"name": "ci", "role": "finance"}
    first = client.post("/api/v1/tokens", json=body, headers=headers)
    assert first.status_code == 201, first.text
    token = first.json()["token"]
    assert first.headers["cache-control"] == "no-store"
    # The token works, so it is the real secret we are looking for.
    assert client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).is_success

    # cp_<prefix>_<secret>; the secret is URL-safe base64 and may itself contain "_".
    secret_part = token.split("_", 2)[2]
    assert secret_part not in _stored(engine)
    assert secret_part not in caplog.text

    # The same key again must not create a second token, nor hand out the first one
    # (that would mean it was kept): it says so and changes nothing.
    again = client.post("/api/v1/tokens", json=body, headers=headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "idempotency_answer_not_kept"
    assert secret_part not in again.text
    listed = client.get("/api/v1/tokens", headers=world.auth("operator")).json()["items"]
    assert [t["name"] for t in listed].count("ci") == 1


def test_an_ordinary_answer_is_still_replayed(client: TestClient, world: World) -> None:
    headers = {**world.auth("operator"), "Idempotency-Key": "tenant-zele"}
    body = {"name": "Zele", "nis_code": "42028"}
    first = client.post("/api/v1/tenants", json=body, headers=headers)
    again = client.post("/api/v1/tenants", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
