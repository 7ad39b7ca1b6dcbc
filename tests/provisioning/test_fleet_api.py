"""Fleet upgrades through the HTTP API: plan with preview, run, status, pause, resume,
cancel; operators only; problems name the field. Runs on SQLite and real PostgreSQL.

The reconciler is not running here: instances are marked reconciled by hand where the
executor needs them Ready (the real reconcile path is covered in test_fleet_run.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.auth.models import AuditEvent
from controlplane.catalog.publishing import publish_release
from controlplane.db.types import utcnow
from controlplane.provisioning import fleet
from controlplane.provisioning.models import Instance, Phase
from tests.api.conftest import World, app, client, world  # noqa: F401
from tests.factories import (  # noqa: F401
    database_url,
    engine,
    postgres_template,
    sqlite_template,
)
from tests.provisioning.fleet_support import shop_release

PLANS = "/api/v1/fleet/plans"
RUNS = "/api/v1/fleet/runs"


def _setup(http: TestClient, w: World, db: Engine) -> None:
    with Session(db) as session:
        for version in ("1.0.0", "2.0.0"):
            publish_release(session, shop_release(version))
        session.commit()
    for tenant, name in (("gent", "shop1"), ("gent", "shop2"), ("brugge", "shop3")):
        r = http.post(
            f"/api/v1/tenants/{tenant}/instances",
            json={"name": name, "service": "shop", "version": "1.0.0", "plan": "small"},
            headers=w.auth("operator"),
        )
        assert r.status_code == 202, r.text
    with Session(db) as session:  # what the reconciler would have written
        for row in session.exec(select(Instance)).all():
            row.phase = Phase.READY
            row.observed_generation = row.generation
            row.current_revision = 1
            session.add(row)
        session.commit()


def _tick(api: FastAPI, db: Engine) -> None:
    with Session(db, expire_on_commit=False) as session:
        fleet.tick(session, utcnow(), check_parameters=api.state.check_parameters)
        session.commit()


def test_plan_preview_run_and_operator_actions(
    app: FastAPI,  # noqa: F811
    client: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    engine: Engine,  # noqa: F811
) -> None:
    _setup(client, world, engine)
    op = world.auth("operator")
    body: dict[str, Any] = {"service": "shop", "from": "<2.0.0", "to": "2.0.0", "wave_size": 2}
    r = client.post(PLANS, json=body, headers=op)
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["from"] == "<2.0.0"
    assert plan["waves"] == 2
    assert [(i["tenant"], i["instance"], i["wave"]) for i in plan["items"]] == [
        ("brugge", "shop3", 0),
        ("gent", "shop1", 0),
        ("gent", "shop2", 1),
    ]
    changes = plan["items"][1]["changes"]
    assert changes["added"] == ["apps/v1/Deployment/web"]
    assert "v1/ConfigMap/settings" in changes["changed"]
    assert changes["removed"] == []

    preview = client.get(f"{PLANS}/{plan['id']}/preview?instance=gent/shop1", headers=op)
    assert preview.status_code == 200, preview.text
    assert preview.json()["changes"] == changes
    missing = client.get(f"{PLANS}/{plan['id']}/preview?instance=gent/nope", headers=op)
    assert missing.status_code == 404
    assert client.get(PLANS, headers=op).json()["items"][0]["instances"] == 3
    # Paged like every list: a second plan, then one per page, newest first.
    second = client.post(PLANS, json={**body, "wave_size": 3}, headers=op).json()
    first_page = client.get(PLANS, params={"limit": 1}, headers=op).json()
    assert [p["id"] for p in first_page["items"]] == [second["id"]]
    next_page = client.get(
        PLANS, params={"limit": 1, "cursor": first_page["next_cursor"]}, headers=op
    ).json()
    assert ([p["id"] for p in next_page["items"]], next_page["next_cursor"]) == ([plan["id"]], None)

    r = client.post(RUNS, json={"plan_id": plan["id"]}, headers=op)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "running"
    assert run["counts"]["pending"] == 3
    assert run["failure_limit"] == 1
    again = client.post(RUNS, json={"plan_id": plan["id"]}, headers=op)
    assert again.status_code == 409
    assert again.json()["code"] == "fleet_run_conflict"

    _tick(app, engine)
    status = client.get(f"{RUNS}/{run['id']}", headers=op).json()
    wave0 = status["waves"][0]
    assert [i["state"] for i in wave0["items"]] == ["upgrading", "upgrading"]
    assert [i["state"] for i in status["waves"][1]["items"]] == ["pending"]
    shown = client.get("/api/v1/tenants/gent/instances/shop1", headers=op).json()
    assert shown["version"] == "2.0.0"
    assert shown["generation"] == 2

    paused = client.post(f"{RUNS}/{run['id']}/pause", headers=op).json()
    assert paused["status"] == "paused"
    assert client.post(f"{RUNS}/{run['id']}/resume", headers=op).json()["status"] == "running"
    cancelled = client.post(f"{RUNS}/{run['id']}/cancel", headers=op).json()
    # In-flight upgrades finish first; the not-started instance is cancelled at once.
    assert cancelled["status"] == "cancelling"
    assert cancelled["counts"]["cancelled"] == 1
    assert cancelled["counts"]["upgrading"] == 2
    resumed = client.post(f"{RUNS}/{run['id']}/resume", headers=op)
    assert resumed.status_code == 409
    runs = client.get(RUNS, params={"limit": 1}, headers=op).json()
    assert ([r["id"] for r in runs["items"]], runs["next_cursor"]) == ([run["id"]], None)

    with Session(engine) as session:
        events = session.exec(select(AuditEvent)).all()
    actions = {e.action for e in events}
    assert {"fleet.plan.create", "fleet.run.start", "fleet.run.pause", "fleet.run.cancel"} <= (
        actions
    )
    assert "fleet.instance.upgrade" in actions
    create = next(e for e in events if e.action == "fleet.plan.create")
    assert create.actor.startswith("operator-test")


def test_only_operators_and_clear_problems(
    client: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    engine: Engine,  # noqa: F811
) -> None:
    _setup(client, world, engine)
    body = {"service": "shop", "from": "<2.0.0", "to": "2.0.0"}
    for who in ("tenant-admin", "tenant-viewer", "finance"):
        assert client.post(PLANS, json=body, headers=world.auth(who)).status_code == 403
        assert client.get(PLANS, headers=world.auth(who)).status_code == 403
    op = world.auth("operator")
    bad = client.post(PLANS, json={**body, "to": "9.9.9"}, headers=op)
    assert bad.status_code == 422
    assert bad.json()["code"] == "fleet_plan_invalid"
    assert [e["location"] for e in bad.json()["errors"]] == ["to"]
    unknown = client.post(PLANS, json={**body, "colour": "red"}, headers=op)
    assert unknown.status_code == 422
    missing = client.get(f"{RUNS}/00000000-0000-0000-0000-000000000000", headers=op)
    assert missing.status_code == 404
    assert missing.json()["code"] == "fleet_run_not_found"
