"""Idempotency-Key on creates, health/readiness/metrics, request ids and the audit log."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from controlplane.provisioning.models import Instance
from tests.api.conftest import World

INST = "/api/v1/tenants/gent/instances"
BODY = {"name": "web", "service": "demo", "plan": "small"}


def _instances(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Instance)).one()


def test_same_key_same_body_replays(client: TestClient, world: World, engine: Engine) -> None:
    h = {**world.auth("tenant-admin"), "Idempotency-Key": "create-web-1"}
    first = client.post(INST, json=BODY, headers=h)
    assert first.status_code == 202
    # Same JSON, other spelling: still the same request.
    second = client.post(
        INST,
        content=b'{"plan":"small", "service":"demo","name":"web"}',
        headers={**h, "Content-Type": "application/json"},
    )
    assert second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    assert _instances(engine) == 1


def test_same_key_other_body_is_refused(client: TestClient, world: World, engine: Engine) -> None:
    h = {**world.auth("tenant-admin"), "Idempotency-Key": "k"}
    assert client.post(INST, json=BODY, headers=h).status_code == 202
    r = client.post(INST, json={**BODY, "name": "other"}, headers=h)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "idempotency_key_reused"
    assert _instances(engine) == 1


def test_keys_are_per_token_and_failures_are_not_kept(
    client: TestClient, world: World, engine: Engine
) -> None:
    key = {"Idempotency-Key": "shared"}
    bad = client.post(
        INST, json={**BODY, "plan": "nope"}, headers={**world.auth("operator"), **key}
    )
    assert bad.status_code == 422
    good = client.post(INST, json=BODY, headers={**world.auth("operator"), **key})
    assert good.status_code == 202
    other = client.post(
        INST, json={**BODY, "name": "web2"}, headers={**world.auth("tenant-admin"), **key}
    )
    assert other.status_code == 202
    assert _instances(engine) == 2


def test_health_ready_metrics(client: TestClient, world: World) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post(INST, json=BODY, headers=world.auth("operator"))
    client.get(f"{INST}/web", headers=world.auth("operator"))
    text = client.get("/metrics").text
    assert 'controlplane_instances{phase="Pending"} 1.0' in text
    assert 'route="/api/v1/tenants/{tenant}/instances/{name}"' in text
    assert "/instances/web" not in text  # templates, not concrete paths


def test_request_id_is_echoed(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/whoami", headers={**world.auth("finance"), "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/api/v1/whoami", headers={**world.auth("finance"), "X-Request-ID": "x" * 500})
    assert r.headers["x-request-id"] != "x" * 500


def test_audit_log_filters_and_scoping(client: TestClient, world: World) -> None:
    op = world.auth("operator")
    client.post(INST, json=BODY, headers=op)
    client.post("/api/v1/tenants", json={"name": "Zele", "nis_code": "42028"}, headers=op)
    client.post("/api/v1/tenants/brugge/instances", json={**BODY, "name": "b"}, headers=op)
    everything = client.get("/api/v1/audit", headers=world.auth("finance")).json()["items"]
    actions = [e["action"] for e in everything]
    assert actions == ["instance.create", "tenant.create", "instance.create"]  # newest first
    only = client.get("/api/v1/audit", params={"action": "tenant.create"}, headers=op).json()[
        "items"
    ]
    assert [e["resource"] for e in only] == ["tenant:zele"]
    scoped = client.get("/api/v1/audit", headers=world.auth("tenant-viewer")).json()["items"]
    assert [(e["tenant"], e["resource"]) for e in scoped] == [("gent", "instance:gent/web")]
    assert scoped[0]["actor"].startswith("operator-test#")
    future = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00"}, headers=op).json()
    assert future["items"] == []


def test_audit_log_filters_by_tenant_actor_and_time(client: TestClient, world: World) -> None:
    op = world.auth("operator")
    client.post(INST, json=BODY, headers=op)
    client.post("/api/v1/tenants/brugge/instances", json={**BODY, "name": "b"}, headers=op)
    finance = world.auth("finance")
    everything = client.get("/api/v1/audit", headers=finance).json()["items"]
    assert len(everything) == 2
    brugge = client.get("/api/v1/audit", params={"tenant": "brugge"}, headers=finance).json()
    assert [e["resource"] for e in brugge["items"]] == ["instance:brugge/b"]
    actor = everything[0]["actor"]
    by_actor = client.get("/api/v1/audit", params={"actor": actor}, headers=finance).json()
    assert len(by_actor["items"]) == 2
    nobody = client.get("/api/v1/audit", params={"actor": "nobody#x"}, headers=finance).json()
    assert nobody["items"] == []
    before = client.get(
        "/api/v1/audit", params={"until": "2000-01-01T00:00:00"}, headers=finance
    ).json()
    assert before["items"] == []
    oldest = everything[-1]["at"]
    since = client.get("/api/v1/audit", params={"since": oldest}, headers=finance).json()
    assert len(since["items"]) == 2
