"""Version lifecycle views: "upgrade available", "deprecated, unsupported after DATE",
"retired" — as derived data and as instance list/show answers of the API."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.catalog.models import VersionStatus
from controlplane.catalog.publishing import publish_release
from controlplane.catalog.records import PublishedVersion
from controlplane.provisioning import lifecycle
from tests.api.conftest import World, app, client, world  # noqa: F401
from tests.factories import (  # noqa: F401
    database_url,
    demo_release,
    engine,
    postgres_template,
    sqlite_template,
)
from tests.provisioning.fleet_support import shop_release

TODAY = date(2025, 3, 1)


def _record(
    version: str,
    upgrade_from: str = "",
    status: VersionStatus = VersionStatus.ACTIVE,
    support_ends: date | None = None,
) -> PublishedVersion:
    release = demo_release(version, upgrade_from=upgrade_from)
    return PublishedVersion(
        service="demo",
        version=version,
        release=release.model_dump(mode="json"),
        digest=release.digest,
        status=status,
        support_ends=support_ends,
    )


def test_upgrade_available_is_the_newest_reachable_active_version() -> None:
    versions = [
        _record("1.0.0"),
        _record("1.1.0", ">=1.0.0,<1.1.0"),
        _record("2.0.0", ">=1.1.0,<2.0.0"),  # not reachable from 1.0.0 in one step
        _record("1.2.0", ">=1.0.0,<1.2.0", status=VersionStatus.RETIRED),
    ]
    assert lifecycle.upgrade_target("1.0.0", versions) == "1.1.0"
    assert lifecycle.upgrade_target("1.1.0", versions) == "2.0.0"
    assert lifecycle.upgrade_target("2.0.0", versions) is None
    view = lifecycle.view("demo", "2.0.0", versions, today=TODAY)
    assert view == lifecycle.LifecycleView(
        upgrade_available=None, deprecated=False, support_ends=None, retired=False, message=""
    )


def test_deprecated_and_retired_messages() -> None:
    ends = date(2025, 6, 30)
    versions = [
        _record("1.0.0", status=VersionStatus.DEPRECATED, support_ends=ends),
        _record("1.1.0", ">=1.0.0,<1.1.0"),
    ]
    view = lifecycle.view("demo", "1.0.0", versions, today=TODAY)
    assert view.deprecated
    assert view.support_ends == ends
    assert view.upgrade_available == "1.1.0"
    assert view.message == (
        "demo 1.0.0 is deprecated, unsupported after 2025-06-30; upgrade available: 1.1.0."
    )
    later = lifecycle.view("demo", "1.0.0", versions, today=date(2025, 7, 1))
    assert "unsupported since 2025-06-30" in later.message

    versions[0].status = VersionStatus.RETIRED
    versions[1].status = VersionStatus.DEPRECATED  # no active target: no upgrade offered
    retired = lifecycle.view("demo", "1.0.0", versions, today=TODAY)
    assert retired.retired
    assert not retired.deprecated
    assert retired.upgrade_available is None
    assert retired.message == (
        "demo 1.0.0 is retired: it is no longer supported; no upgrade path is published yet."
    )


def _publish_shop(db: Engine) -> None:
    with Session(db) as session:
        for version in ("1.0.0", "2.0.0"):
            publish_release(session, shop_release(version))
        session.commit()


def test_instance_answers_carry_the_lifecycle(
    client: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    engine: Engine,  # noqa: F811
) -> None:
    _publish_shop(engine)
    op = world.auth("operator")
    base = "/api/v1/tenants/gent/instances"
    created = client.post(
        base,
        json={"name": "shop", "service": "shop", "version": "1.0.0", "plan": "small"},
        headers=op,
    )
    assert created.status_code == 202, created.text
    shown = client.get(f"{base}/shop", headers=world.auth("tenant-viewer")).json()
    assert shown["lifecycle"] == {
        "upgrade_available": "2.0.0",
        "deprecated": False,
        "support_ends": None,
        "retired": False,
        "message": "Upgrade available: 2.0.0.",
    }

    r = client.post(
        "/api/v1/catalog/shop/versions/1.0.0/deprecate",
        json={"support_ends": "2099-06-30"},
        headers=op,
    )
    assert r.status_code == 200, r.text
    listed = client.get(base, headers=op).json()["items"]
    assert listed[0]["lifecycle"]["deprecated"] is True
    assert listed[0]["lifecycle"]["support_ends"] == "2099-06-30"
    assert "unsupported after 2099-06-30" in listed[0]["lifecycle"]["message"]

    r = client.post("/api/v1/catalog/shop/versions/1.0.0/retire", json={}, headers=op)
    assert r.status_code == 200, r.text
    shown = client.get(f"{base}/shop", headers=op).json()
    assert shown["lifecycle"]["retired"] is True
    assert shown["lifecycle"]["message"].startswith("shop 1.0.0 is retired")
    # A retired version refuses new instances; the existing one keeps running it.
    refused = client.post(
        base,
        json={"name": "shop2", "service": "shop", "version": "1.0.0", "plan": "small"},
        headers=op,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "version_retired"
