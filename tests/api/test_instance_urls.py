"""An instance's ``urls``: its release's entry points on its host name.

Entry points are release metadata (left out of the digest), so a version published before
they existed is amended in place by publishing it again, and its instances show URLs from
then on. Listing reads them in one statement per page, whatever the page holds, and only
the ``entry_points`` part of the release documents (never the template bundles).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import EntryPoint
from controlplane.catalog.publishing import PublishOutcome, publish_release
from controlplane.provisioning.models import Instance, Phase
from controlplane.provisioning.placement import ensure_default_target
from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.api.test_query_counts import statements
from tests.factories import demo_release

BASE = "/api/v1/tenants/{tenant}/instances"
POINTS = [
    EntryPoint(name="public", title="Site"),
    EntryPoint(name="admin", title="Admin", host_prefix="api.", path="/admin/"),
]
#: A release document read other than through a JSON path (SQLite ``JSON_EXTRACT(col, ?)``,
#: PostgreSQL ``col -> %(…)s``): the whole document, template bundles and all.
WHOLE_RELEASE = re.compile(r"published_versions\.release(?!, \?\)|\s*->)")


def _instance(
    session: Session, slug: str, name: str, service: str, version: str, **kw: object
) -> Instance:
    tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
    row = Instance(
        tenant_id=tenant.id,
        name=name,
        service=service,
        version=version,
        plan=kw.pop("plan", "small"),  # type: ignore[arg-type]
        parameters={},
        target="local",
        namespace=f"{slug}-{name}",
        **kw,  # type: ignore[arg-type]
    )
    session.add(row)
    return row


def _amend_demo(session: Session) -> None:
    amended = demo_release("1.0.0").model_copy(update={"entry_points": POINTS})
    result = publish_release(session, amended)
    assert result.outcome is PublishOutcome.AMENDED
    assert result.record.digest == demo_release("1.0.0").digest


def test_urls_come_from_the_release_and_the_host_name(
    client: TestClient, engine: Engine, world: World, tmp_path: Path
) -> None:
    with Session(engine) as session:
        ensure_default_target(session, tmp_path)
        _amend_demo(session)
        _instance(session, world.gent, "site", "demo", "1.0.0", hostname="site.gent.be")
        _instance(session, world.gent, "newer", "demo", "1.1.0", hostname="newer.gent.be")
        _instance(session, world.gent, "nohost", "demo", "1.0.0")
        _instance(
            session,
            world.gent,
            "going",
            "demo",
            "1.0.0",
            hostname="going.gent.be",
            deletion_requested=True,
            phase=Phase.DELETING,
        )
        session.commit()
    base = BASE.format(tenant=world.gent)
    shown = client.get(f"{base}/site", headers=world.auth("tenant-viewer")).json()
    assert shown["urls"] == [
        {"name": "public", "title": "Site", "url": "https://site.gent.be/"},
        {"name": "admin", "title": "Admin", "url": "https://api.site.gent.be/admin/"},
    ]
    # 1.1.0 was published without entry points; no host name; being deleted: no URLs.
    for name in ("newer", "nohost", "going"):
        assert client.get(f"{base}/{name}", headers=world.auth("operator")).json()["urls"] == []
    listed = client.get(base, headers=world.auth("operator")).json()["items"]
    assert {i["name"]: len(i["urls"]) for i in listed} == {
        "going": 0,
        "newer": 0,
        "nohost": 0,
        "site": 2,
    }


def test_listing_reads_entry_points_once_per_page(
    client: TestClient, engine: Engine, world: World, tmp_path: Path
) -> None:
    with Session(engine) as session:
        ensure_default_target(session, tmp_path)
        _amend_demo(session)
        other = demo_release("1.0.0", name="other").model_copy(update={"entry_points": POINTS})
        publish_release(session, other)
        for i in range(40):
            service = "demo" if i % 2 == 0 else "other"
            name = f"app{i:03d}"
            _instance(session, world.gent, name, service, "1.0.0", hostname=f"{name}.gent.be")
        _instance(session, world.brugge, "one", "demo", "1.0.0", hostname="one.brugge.be")
        session.commit()
    many, one = BASE.format(tenant=world.gent), BASE.format(tenant=world.brugge)
    client.get(many, headers=world.auth("operator"))  # warm
    with statements(engine) as small:
        r = client.get(one, headers=world.auth("operator"))
    assert r.json()["items"][0]["urls"][0]["url"] == "https://one.brugge.be/"
    with statements(engine) as large:
        r = client.get(many, headers=world.auth("operator"))
    items = r.json()["items"]
    assert len(items) == 40
    assert all(len(i["urls"]) == 2 for i in items)
    assert len(large) == len(small), (small, large)
    assert sum("entry_points" in s or "published_versions.release" in s for s in large) <= 1
    assert not any(WHOLE_RELEASE.search(s) for s in large), large


def test_republishing_the_shipped_catalogue_amends_old_versions_with_urls(
    client: TestClient, engine: Engine, world: World, tmp_path: Path
) -> None:
    """Versions published before entry points existed: amended, same digests, URLs appear."""
    shipped = load_catalog().releases()
    with Session(engine) as session:
        ensure_default_target(session, tmp_path)
        for release in shipped:
            old = release.model_copy(update={"entry_points": []})
            assert publish_release(session, old).outcome is PublishOutcome.CREATED
        _instance(session, world.gent, "login", "keycloak", "26.0.7", hostname="login.gent.be")
        session.commit()
    path = BASE.format(tenant=world.gent) + "/login"
    assert client.get(path, headers=world.auth("operator")).json()["urls"] == []
    with Session(engine) as session:
        for release in shipped:
            result = publish_release(session, release)
            assert result.outcome is PublishOutcome.AMENDED, release.name
            assert result.record.digest == release.digest
        session.commit()
    urls = {
        u["name"]: u["url"] for u in client.get(path, headers=world.auth("operator")).json()["urls"]
    }
    assert urls == {
        "public": "https://login.gent.be/realms/master/account/",
        "admin": "https://login.gent.be/admin/",
    }
