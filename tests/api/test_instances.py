"""Instances through the API: desired state, generation, reconcile queue, admission, ETags."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from controlplane.auth.models import AuditEvent
from controlplane.catalog.publishing import find_version, retire
from controlplane.provisioning.models import Instance, ReconcileRequest, Revision, RevisionOutcome
from tests.api.conftest import World
from tests.factories import publish_demo

BASE = "/api/v1/tenants/gent/instances"


def _create(client: TestClient, world: World, **body: Any) -> Any:
    payload = {"name": "web", "service": "demo", "plan": "small", **body}
    return client.post(BASE, json=payload, headers=world.auth("operator"))


def _snapshot(engine: Engine) -> tuple[int, int, int, list[tuple[str, int]]]:
    with Session(engine) as s:
        rows = s.exec(select(Instance.name, Instance.generation)).all()
        return (
            s.exec(select(func.count()).select_from(Instance)).one(),
            s.exec(select(func.count()).select_from(ReconcileRequest)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
            sorted((n, g) for n, g in rows),
        )


def test_create_records_desired_state_and_queues_a_reconcile(
    client: TestClient, world: World, engine: Engine
) -> None:
    r = _create(client, world, parameters={"hostname": "loket.gent.be"})
    assert r.status_code == 202
    body = r.json()
    assert r.headers["etag"] == '"1"'
    assert body["version"] == "1.1.0"  # newest active by default
    assert body["namespace"] == "gent--web"
    assert body["target"] == "local"
    assert body["status"] == {
        "phase": "Pending",
        "conditions": [],
        "observedGeneration": 0,
        "message": None,
        "currentRevision": 0,
    }
    with Session(engine) as s:
        request = s.exec(select(ReconcileRequest)).one()
        assert str(request.instance_id) == body["id"]
        assert request.lease_owner is None
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "instance.create")).one()
        assert event.resource == "instance:gent/web"
        assert event.request_id == r.headers["x-request-id"]


def test_update_bumps_generation_and_requeues(
    client: TestClient, world: World, engine: Engine
) -> None:
    _create(client, world)
    h = world.auth("tenant-admin")
    r = client.patch(f"{BASE}/web", json={"plan": "large"}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 202, r.text
    assert r.json()["plan"] == "large"
    assert r.headers["etag"] == '"2"'
    # The same change again changes nothing: generation stays.
    again = client.patch(f"{BASE}/web", json={"plan": "large"}, headers=h)
    assert again.json()["generation"] == 2
    # A stale ETag is refused and changes nothing.
    before = _snapshot(engine)
    stale = client.patch(f"{BASE}/web", json={"plan": "small"}, headers={**h, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert _snapshot(engine) == before


def test_parameters_are_checked_against_the_schema(
    client: TestClient, world: World, engine: Engine
) -> None:
    before = _snapshot(engine)
    r = _create(client, world, parameters={"smtp": {"port": 70000}, "typo": 1})
    assert r.status_code == 422
    problem = r.json()
    locations = {e["location"] for e in problem["errors"]}
    assert any(loc.startswith("parameters.smtp.port") for loc in locations), problem
    assert _snapshot(engine) == before


def test_unknown_plan_and_unpublished_version_are_refused(
    client: TestClient, world: World, engine: Engine
) -> None:
    before = _snapshot(engine)
    r = _create(client, world, plan="huge")
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "plan"
    assert "small" in r.json()["hint"]
    r = _create(client, world, version="9.9.9")
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "version"
    r = _create(client, world, service="nope")
    assert r.status_code == 422
    assert _snapshot(engine) == before


def test_deprecated_warns_and_retired_refuses(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = world.auth("operator")
    r = client.post(
        "/api/v1/catalog/demo/versions/1.0.0/deprecate",
        json={"support_ends": "2027-06-30", "message": "move to 1.1"},
        headers=h,
    )
    assert r.status_code == 200
    r = _create(client, world, version="1.0.0")
    assert r.status_code == 202
    assert "deprecated" in r.json()["warnings"][0]
    assert "2027-06-30" in r.json()["warnings"][0]
    assert client.post("/api/v1/catalog/demo/versions/1.0.0/retire", headers=h).status_code == 200
    before = _snapshot(engine)
    r = _create(client, world, name="web2", version="1.0.0")
    assert r.status_code == 409
    assert r.json()["code"] == "version_retired"
    assert _snapshot(engine) == before
    # The instance that runs the retired version can still change plan.
    r = client.patch(f"{BASE}/web", json={"plan": "large"}, headers=h)
    assert r.status_code == 202


def test_name_rules(client: TestClient, world: World, engine: Engine) -> None:
    before = _snapshot(engine)
    for bad in ["Web", "-web", "web_1", "a" * 41, "wé"]:
        r = _create(client, world, name=bad)
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["location"] == "name"
    assert _snapshot(engine) == before
    assert _create(client, world).status_code == 202
    dup = _create(client, world)
    assert dup.status_code == 409
    assert dup.json()["code"] == "instance_exists"


def test_tenant_limit(client: TestClient, world: World) -> None:
    h = world.auth("operator")
    client.patch("/api/v1/tenants/gent", json={"max_instances": 1}, headers=h)
    assert _create(client, world).status_code == 202
    r = _create(client, world, name="two")
    assert r.status_code == 409
    assert r.json()["code"] == "tenant_limit"


def test_delete_is_idempotent_and_blocks_changes(client: TestClient, world: World) -> None:
    _create(client, world)
    h = world.auth("tenant-admin")
    r = client.delete(f"{BASE}/web", headers=h)
    assert r.status_code == 202
    # Retained (issue 18): the data is kept until purge_after; a change is refused.
    assert r.json()["deletion_requested"] is False
    assert r.json()["status"]["phase"] == "Deleting"  # Retained once the workloads stopped
    assert r.json()["purge_after"]
    assert r.json()["purge_after"]
    assert r.json()["generation"] == 2
    assert client.delete(f"{BASE}/web", headers=h).json()["generation"] == 2
    r = client.patch(f"{BASE}/web", json={"plan": "large"}, headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "instance_retained"
    assert r.json()["hint"] == "cityctl instance restore web"
    # Purge: everything goes.
    r = client.delete(f"{BASE}/web", params={"purge": "true"}, headers=h)
    assert r.status_code == 202
    assert r.json()["deletion_requested"] is True
    assert r.json()["status"]["phase"] == "Deleting"
    assert r.json()["generation"] == 3
    assert client.delete(f"{BASE}/web?purge=true", headers=h).json()["generation"] == 3
    r = client.patch(f"{BASE}/web", json={"plan": "large"}, headers=h)
    assert r.status_code == 409
    r = client.post(f"{BASE}/web/restore", headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "instance_deleting"


def test_upgrade_and_rollback(client: TestClient, world: World, engine: Engine) -> None:
    h = world.auth("operator")
    assert _create(client, world, version="1.0.0").status_code == 202
    r = client.patch(f"{BASE}/web", json={"version": "1.1.0"}, headers=h)
    assert r.status_code == 202
    assert r.json()["version"] == "1.1.0"
    down = client.patch(f"{BASE}/web", json={"version": "1.0.0"}, headers=h)
    assert down.status_code == 422
    assert "rollback" in down.json()["hint"]
    # The reconciler writes revisions; pretend it applied the first one.
    with Session(engine) as s:
        instance = s.exec(select(Instance)).one()
        s.add(
            Revision(
                instance_id=instance.id,
                number=1,
                generation=1,
                version="1.0.0",
                plan="small",
                parameters={},
                digest="sha256:x",
            )
        )
        s.commit()
    revisions = client.get(f"{BASE}/web/revisions", headers=h).json()
    assert [rev["number"] for rev in revisions["items"]] == [1]
    r = client.post(f"{BASE}/web/rollback", json={"revision": 1}, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["version"] == "1.0.0"
    assert r.json()["generation"] == 3
    assert client.post(f"{BASE}/web/rollback", json={"revision": 7}, headers=h).status_code == 404


def test_plan_change_and_rollback_say_that_volumes_keep_their_size(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = world.auth("operator")
    assert _create(client, world).status_code == 202
    # The reconciler applied two revisions; the second had grown the volumes to 8Gi (the demo
    # plans have 1Gi: think of an earlier, bigger plan).
    with Session(engine) as s:
        instance = s.exec(select(Instance)).one()
        for number, storage in ((1, "1Gi"), (2, "8Gi")):
            s.add(
                Revision(
                    instance_id=instance.id,
                    number=number,
                    generation=number,
                    version=instance.version,
                    plan="small",
                    parameters={},
                    digest="sha256:x",
                    storage=storage,
                    outcome=RevisionOutcome.APPLIED,
                )
            )
        s.commit()
    kept = (
        "Plan large has 1Gi of storage, but this instance's volumes keep 8Gi: volumes never shrink."
    )

    r = client.patch(f"{BASE}/web", json={"plan": "large"}, headers=h)

    assert r.status_code == 202, r.text
    assert any(w.startswith(kept) for w in r.json()["warnings"]), r.json()["warnings"]
    assert "volumes never shrink" in r.headers["x-warnings"]
    # A change that keeps the plan does not repeat it.
    same = client.patch(
        f"{BASE}/web", json={"parameters": {"hostname": "loket.gent.be"}}, headers=h
    )
    assert same.status_code == 202, same.text
    assert not any("never shrink" in w for w in same.json()["warnings"])
    # A rollback to the 1Gi revision keeps the 8Gi too, and says so.
    back = client.post(f"{BASE}/web/rollback", json={"revision": 1}, headers=h)
    assert back.status_code == 202, back.text
    assert any("keep 8Gi: volumes never shrink" in w for w in back.json()["warnings"])
    history = client.get(f"{BASE}/web/revisions", headers=h).json()["items"]
    assert [(rev["number"], rev["storage"]) for rev in history] == [(2, "8Gi"), (1, "1Gi")]


def test_list_pagination_with_cursor(client: TestClient, world: World) -> None:
    h = world.auth("operator")
    names = [f"app{i:02d}" for i in range(7)]
    for name in reversed(names):
        assert _create(client, world, name=name).status_code == 202
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get(BASE, params=params, headers=h).json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names
    bad = client.get(BASE, params={"cursor": "not-a-cursor"}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["location"] == "query.cursor"


def test_retire_then_publish_newer_keeps_default_choice(
    client: TestClient, world: World, engine: Engine
) -> None:
    with Session(engine) as s:
        record = find_version(s, "demo", "1.1.0")
        assert record is not None
        retire(s, record, message=None)
        publish_demo(s, "1.0.0")  # identical content: a no-op
        s.commit()
    r = _create(client, world)
    assert r.status_code == 202
    assert r.json()["version"] == "1.0.0"
