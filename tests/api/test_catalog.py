"""Catalogue publishing through the API: immutability, lifecycle, bundle visibility."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.records import PublishedVersion
from tests.api.conftest import World
from tests.factories import demo_release

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
