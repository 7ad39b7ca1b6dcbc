"""Tenants through the API: create, list, show, update with If-Match, CSV import."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.factories import MUNICIPALITIES_CSV

URL = "/api/v1/tenants"


def _count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Tenant)).one()


def test_create_derives_slug_and_refuses_duplicates(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = world.auth("operator")
    r = client.post(URL, json={"name": "Sint-Niklaas", "nis_code": "46021"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["slug"] == "sint-niklaas"
    assert r.headers["etag"] == '"1"'
    before = _count(engine)
    dup = client.post(URL, json={"name": "Other", "nis_code": "46021"}, headers=h)
    assert dup.status_code == 409
    assert "sint-niklaas" in dup.json()["detail"]
    assert _count(engine) == before


def test_update_with_if_match(client: TestClient, world: World) -> None:
    h = world.auth("operator")
    etag = client.get(f"{URL}/gent", headers=h).headers["etag"]
    r = client.patch(f"{URL}/gent", json={"inhabitants": 265_086}, headers={**h, "If-Match": etag})
    assert r.status_code == 200
    assert r.json()["inhabitants"] == 265_086
    assert r.headers["etag"] != etag
    stale = client.patch(f"{URL}/gent", json={"group": "x"}, headers={**h, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(f"{URL}/gent", headers=h).json()["group"] is None
    nulled = client.patch(f"{URL}/gent", json={"name": None}, headers=h)
    assert nulled.status_code == 422


def test_import_is_idempotent_and_updates_inhabitants(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = {**world.auth("operator"), "Content-Type": "text/csv"}
    text = MUNICIPALITIES_CSV.read_text(encoding="utf-8")
    first = client.post(f"{URL}/import", content=text.encode(), headers=h)
    assert first.status_code == 200, first.text
    summary = first.json()
    # Gent and Brugge exist already (same NIS codes) with other inhabitants.
    assert len(summary["created"]) == 283
    assert sorted(summary["updated"]) == ["brugge", "gent"]
    assert summary["attribution"] == "Source: Statbel, CC BY 4.0"
    again = client.post(f"{URL}/import", content=text.encode(), headers=h).json()
    assert (again["created"], again["updated"], len(again["unchanged"])) == ([], [], 285)
    changed = text.replace("44021,Gent,Oost-Vlaanderen,", "44021,Gent,Oost-Vlaanderen,1")
    assert changed != text
    third = client.post(f"{URL}/import", content=changed.encode(), headers=h).json()
    assert third["updated"] == ["gent"]
    assert _count(engine) == 285


def test_import_errors_name_the_line_and_import_nothing(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = {**world.auth("operator"), "Content-Type": "text/csv"}
    csv = (
        "nis_code,name_nl,province,population,population_year\n"
        "11001,Aartselaar,Antwerpen,14427,2020\n"
        "1100X,Antwerpen,Antwerpen,540196,2020\n"
        "11004,Boechout,Antwerpen,many,2020\n"
    )
    before = _count(engine)
    r = client.post(f"{URL}/import", content=csv.encode(), headers=h)
    assert r.status_code == 422
    locations = [e["location"] for e in r.json()["errors"]]
    assert locations == ["line 3", "line 4"]
    assert _count(engine) == before
    bad_header = client.post(f"{URL}/import", content=b"a,b\n1,2\n", headers=h)
    assert bad_header.status_code == 422
    assert bad_header.json()["errors"][0]["location"] == "line 1"


def test_list_is_scoped_for_tenant_roles(client: TestClient, world: World) -> None:
    everyone = client.get(URL, headers=world.auth("finance")).json()
    assert [t["slug"] for t in everyone["items"]] == ["brugge", "gent"]
    own = client.get(URL, headers=world.auth("tenant-viewer")).json()
    assert [t["slug"] for t in own["items"]] == ["gent"]
