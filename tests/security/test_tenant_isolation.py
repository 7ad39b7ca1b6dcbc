"""Lists never show a tenant role another tenant's rows (the authorisation matrix checks
status codes; this checks what the answers contain)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from controlplane.db.types import utcnow
from tests.security.conftest import World

INST = "/api/v1/tenants/gent/instances"


def _seed(client: TestClient, world: World) -> None:
    for tenant in ("gent", "brugge"):
        r = client.post(
            f"/api/v1/tenants/{tenant}/instances",
            json={"name": "web", "service": "demo", "version": "1.0.0", "plan": "small"},
            headers=world.auth("operator"),
        )
        assert r.status_code == 202, r.text


def test_a_tenant_role_sees_only_its_own_rows(client: TestClient, world: World) -> None:
    _seed(client, world)
    brugge = world.auth("other-admin")

    tenants = client.get("/api/v1/tenants", headers=brugge).json()["items"]
    assert [t["slug"] for t in tenants] == ["brugge"]

    events = client.get("/api/v1/audit?limit=500", headers=brugge).json()["items"]
    assert events, "brugge's own instance create is audited"
    assert {e["tenant"] for e in events} == {"brugge"}
    # The operator's view has gent's events: the filter is what hides them.
    everything = client.get("/api/v1/audit?limit=500", headers=world.auth("operator")).json()
    assert "gent" in {e["tenant"] for e in everything["items"]}
    assert client.get("/api/v1/audit?tenant=gent", headers=brugge).status_code == 404
    by_actor = client.get(
        "/api/v1/audit", params={"action": "instance.create", "limit": 500}, headers=brugge
    ).json()["items"]
    assert {e["tenant"] for e in by_actor} <= {"brugge"}

    period = utcnow().strftime("%Y-%m")
    statements = client.get(f"/api/v1/billing/periods/{period}/statements", headers=brugge)
    assert statements.status_code == 200, statements.text
    assert '"gent"' not in statements.text
    exported = client.get(f"/api/v1/billing/periods/{period}/export?format=json", headers=brugge)
    assert exported.status_code == 200
    assert '"gent"' not in exported.text
    csv = client.get(f"/api/v1/billing/periods/{period}/export?format=csv", headers=brugge)
    assert "gent" not in csv.text.replace("brugge", "")

    estimate = client.get(
        "/api/v1/billing/estimate", params={"service": "demo", "plan": "small"}, headers=brugge
    )
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["tenant"] == "brugge"

    for path in (INST, f"{INST}/web", f"{INST}/web/revisions", "/api/v1/tenants/gent"):
        hidden = client.get(path, headers=brugge)
        assert hidden.status_code == 404, (path, hidden.text)
        assert "web" not in json.dumps(hidden.json().get("errors", []))
    for path in (
        f"/api/v1/billing/periods/{period}/statements/gent",
        "/api/v1/billing/estimate?service=demo&plan=small&tenant=gent",
    ):
        assert client.get(path, headers=brugge).status_code == 404, path
