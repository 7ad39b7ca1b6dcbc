"""Catalogue publishing through the API: immutability, lifecycle, bundle visibility."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.auth.models import AuditEvent
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.records import PublishedVersion
from controlplane.db.types import utcnow
from controlplane.provisioning.models import Instance, ReconcileRequest
from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.factories import demo_release, make_instance

URL = "/api/v1/catalog"


def test_publish_shipped_catalogue_then_republish_is_a_noop(
    client: TestClient, world: World
) -> None:
    h = world.auth("operator")
    expected = {(r.name, r.version.version) for r in load_catalog().releases()}
    first = client.post(f"{URL}/publish", json={}, headers=h)
    assert first.status_code == 201, first.text
    assert {(p["service"], p["version"]) for p in first.json()["published"]} == expected
    again = client.post(f"{URL}/publish", json={"service": None, "version": None}, headers=h)
    assert again.status_code == 200
    assert {p["outcome"] for p in again.json()["published"]} == {"unchanged"}


def test_uploaded_release_is_immutable(client: TestClient, world: World, engine: Engine) -> None:
    h = world.auth("operator")
    release = demo_release("2.0.0").model_dump(mode="json")
    assert client.post(f"{URL}/publish", json={"release": release}, headers=h).status_code == 201
    assert client.post(f"{URL}/publish", json={"release": release}, headers=h).status_code == 200
    changed = demo_release("2.0.0", template_text="kind: Secret\n").model_dump(mode="json")
    r = client.post(f"{URL}/publish", json={"release": changed}, headers=h)
    assert r.status_code == 409
    assert r.json()["code"] == "version_immutable"
    with Session(engine) as s:
        row = s.exec(select(PublishedVersion).where(PublishedVersion.version == "2.0.0")).one()
        assert row.release["bundle"]["files"] == {"00-config.yaml.j2": "kind: ConfigMap\n"}


def test_bundle_only_for_operators(client: TestClient, world: World) -> None:
    op = client.get(f"{URL}/demo/versions/1.0.0", headers=world.auth("operator")).json()
    assert op["bundle"]["files"]
    admin = client.get(f"{URL}/demo/versions/1.0.0", headers=world.auth("tenant-admin")).json()
    assert admin["bundle"] is None
    assert admin["plans"][0]["name"] == "small"
    assert admin["parameters"]["type"] == "object"


def test_list_and_show(client: TestClient, world: World) -> None:
    h = world.auth("tenant-viewer")
    listing = client.get(URL, headers=h).json()
    assert [s["name"] for s in listing["items"]] == ["demo"]
    assert [v["version"] for v in listing["items"][0]["versions"]] == ["1.0.0", "1.1.0"]
    assert client.get(f"{URL}/nope", headers=h).status_code == 404
    assert client.get(f"{URL}/demo/versions/3.0.0", headers=h).status_code == 404


def test_retired_cannot_be_deprecated(client: TestClient, world: World) -> None:
    h = world.auth("operator")
    assert client.post(f"{URL}/demo/versions/1.0.0/retire", headers=h).status_code == 200
    r = client.post(f"{URL}/demo/versions/1.0.0/deprecate", json={}, headers=h)
    assert r.status_code == 409


def _running_demo(engine: Engine) -> uuid.UUID:
    """An instance of demo 1.1.0 (the newest) in gent, its reconcile request not due."""
    with Session(engine) as s:
        gent = s.exec(select(Tenant).where(Tenant.slug == "gent")).one()
        instance = make_instance(s, gent, "forms")
        for request in s.exec(select(ReconcileRequest)).all():
            request.due_at = utcnow() + timedelta(hours=1)
            request.reason = "resync"
            s.add(request)
        s.commit()
        assert instance.version == "1.1.0"
        return instance.id


CORRECTED = demo_release("1.1.0", upgrade_from=">=1.0.0", template_text="kind: Secret\n")


def test_a_published_release_is_corrected_only_on_request(
    client: TestClient, world: World, engine: Engine
) -> None:
    iid = _running_demo(engine)
    h = world.auth("operator")
    body: dict[str, Any] = {"release": CORRECTED.model_dump(mode="json")}
    refused = client.post(f"{URL}/publish", json=body, headers=h)
    assert refused.status_code == 409
    assert refused.json()["code"] == "version_immutable"
    assert "--correct demo@1.1.0" in refused.json()["hint"]

    body |= {"correct": [{"service": "demo", "version": "1.1.0"}], "reason": "wrong user id"}
    r = client.post(f"{URL}/publish", json=body, headers=h)
    assert r.status_code == 201, r.text
    (item,) = r.json()["published"]
    assert item["outcome"] == "corrected"
    assert item["digest"] == CORRECTED.digest != item["previous_digest"]
    assert item["instances_changed"] == 1
    with Session(engine) as s:
        events = {e.action: e for e in s.exec(select(AuditEvent)).all()}
        assert events["catalog.correct"].details == {
            "reason": "wrong user id",
            "previous_digest": item["previous_digest"],
            "digest": item["digest"],
            "instances": 1,
        }
        per_instance = events["instance.release_corrected"]
        assert per_instance.resource == "instance:gent/forms"
        assert per_instance.details["generation"] == 2
        instance = s.get(Instance, iid)
        assert instance is not None
        assert instance.generation == 2
        request = s.exec(select(ReconcileRequest).where(ReconcileRequest.instance_id == iid)).one()
        assert request.reason == "release corrected"
        assert request.due_at <= utcnow()
    # Publishing the corrected release again is a no-op.
    again = client.post(
        f"{URL}/publish", json={"release": CORRECTED.model_dump(mode="json")}, headers=h
    )
    assert again.status_code == 200
    assert again.json()["published"][0]["outcome"] == "unchanged"


def test_a_correction_needs_an_operator_and_a_reason(
    client: TestClient, world: World, engine: Engine
) -> None:
    iid = _running_demo(engine)
    body: dict[str, Any] = {
        "release": CORRECTED.model_dump(mode="json"),
        "correct": [{"service": "demo", "version": "1.1.0"}],
    }
    assert (
        client.post(f"{URL}/publish", json=body, headers=world.auth("operator")).status_code == 422
    )
    body["reason"] = "wrong user id"
    assert (
        client.post(f"{URL}/publish", json=body, headers=world.auth("tenant-admin")).status_code
        == 403
    )
    other = body | {"correct": [{"service": "demo", "version": "1.0.0"}]}
    stray = client.post(f"{URL}/publish", json=other, headers=world.auth("operator"))
    assert stray.status_code == 422
    with Session(engine) as s:
        row = s.exec(select(PublishedVersion).where(PublishedVersion.version == "1.1.0")).one()
        assert row.digest != CORRECTED.digest
        instance = s.get(Instance, iid)
        assert instance is not None
        assert instance.generation == 1
