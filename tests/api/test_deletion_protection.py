"""Deletion protection through the API (issue 18): a protected instance is not deleted.

Protection is set at creation (``deletion_protection``, or a plan that declares it), by
``POST …/protection``, and lifted by ``DELETE …/protection``: each its own audited action.
A delete of a protected instance is refused before anything changes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import (
    METADATA_FIELDS,
    METADATA_VERSION_FIELDS,
    ServiceRelease,
    canonical_json,
)
from controlplane.catalog.publishing import PublishOutcome, find_version, publish_release
from controlplane.provisioning.models import Instance, ReconcileRequest
from tests.api.conftest import World
from tests.factories import demo_release

BASE = "/api/v1/tenants/gent/instances"


def _create(client: TestClient, world: World, name: str = "web", **body: Any) -> Any:
    payload = {"name": name, "service": "demo", "plan": "small", **body}
    r = client.post(BASE, json=payload, headers=world.auth("tenant-admin"))
    assert r.status_code == 202, r.text
    return r.json()


def _state(engine: Engine, name: str) -> tuple[int, bool, bool, int, int]:
    """What a refused delete must leave alone: generation, flags, queue, audit log."""
    with Session(engine) as s:
        row = s.exec(select(Instance).where(Instance.name == name)).one()
        return (
            row.generation,
            row.deletion_requested,
            row.deletion_protection,
            s.exec(select(func.count()).select_from(ReconcileRequest)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
        )


def _audited(engine: Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.at))
            ).all()
        )


def _protect_large_plan(engine: Engine) -> None:
    """Publish demo 1.1.0 again with its ``large`` plan protected: metadata, amended."""
    release = demo_release("1.1.0", upgrade_from=">=1.0.0")
    plans = [p.model_copy(update={"deletion_protection": p.name == "large"}) for p in release.plans]
    protected = release.model_copy(update={"plans": plans})
    with Session(engine) as s:
        before = find_version(s, "demo", "1.1.0")
        assert before is not None
        digest = before.digest
        result = publish_release(s, protected)
        s.commit()
        assert result.outcome is PublishOutcome.AMENDED
        assert result.record.digest == digest == release.digest
        stored = result.record.to_release().plan("large")
        assert stored is not None
        assert stored.deletion_protection


def test_protected_instance_refuses_delete_and_nothing_changes(
    client: TestClient, world: World, engine: Engine
) -> None:
    created = _create(client, world, deletion_protection=True)
    assert created["deletion_protection"] is True
    assert client.get(f"{BASE}/web", headers=world.auth("tenant-viewer")).json()[
        "deletion_protection"
    ]
    before = _state(engine, "web")

    for who in ("tenant-admin", "operator"):
        r = client.delete(f"{BASE}/web", headers={**world.auth(who), "If-Match": '"1"'})
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["code"] == "deletion_protected"
        assert "'web'" in problem["detail"]
        assert problem["hint"] == "cityctl instance unprotect web"
        assert _state(engine, "web") == before

    create_event = _audited(engine, "instance.create")[0]
    assert create_event.details["deletionProtection"] is True


def test_unprotect_is_its_own_audited_step_then_delete_works(
    client: TestClient, world: World, engine: Engine
) -> None:
    _create(client, world)
    protected = client.post(f"{BASE}/web/protection", headers=world.auth("tenant-admin"))
    assert protected.status_code == 200, protected.text
    assert protected.json()["deletion_protection"] is True
    # Not desired state of the stack: no new generation, no reconcile.
    assert protected.json()["generation"] == 1
    assert protected.headers["etag"] == '"1"'
    again = client.post(f"{BASE}/web/protection", headers=world.auth("operator"))
    assert again.status_code == 200
    assert len(_audited(engine, "instance.protect")) == 1  # a no-op is not audited

    assert client.delete(f"{BASE}/web", headers=world.auth("tenant-admin")).status_code == 409

    lifted = client.delete(f"{BASE}/web/protection", headers=world.auth("tenant-admin"))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["deletion_protection"] is False
    [event] = _audited(engine, "instance.unprotect")
    assert event.resource == "instance:gent/web"
    assert event.details == {"deletionProtection": False}

    deleted = client.delete(f"{BASE}/web", headers=world.auth("tenant-admin"))
    assert deleted.status_code == 202, deleted.text
    assert deleted.json()["status"]["phase"] == "Deleting"  # Retained once the workloads stopped
    purged = client.delete(f"{BASE}/web?purge=true", headers=world.auth("tenant-admin"))
    assert purged.status_code == 202, purged.text
    assert purged.json()["deletion_requested"] is True
    # Being deleted: it cannot be protected any more.
    late = client.post(f"{BASE}/web/protection", headers=world.auth("tenant-admin"))
    assert late.status_code == 409
    assert late.json()["code"] == "instance_deleting"


@pytest.mark.parametrize("who", ["tenant-viewer", "finance"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_viewers_and_finance_cannot_change_protection(
    client: TestClient, world: World, engine: Engine, who: str, method: str
) -> None:
    _create(client, world, deletion_protection=True)
    r = client.request(method, f"{BASE}/web/protection", headers=world.auth(who))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _state(engine, "web")[2] is True


def test_other_tenant_admin_does_not_see_it(
    client: TestClient, world: World, engine: Engine
) -> None:
    _create(client, world, deletion_protection=True)
    r = client.delete(f"{BASE}/web/protection", headers=world.auth("other-admin"))
    assert r.status_code == 404
    assert _state(engine, "web")[2] is True


def test_a_protected_plan_protects_on_create_and_on_change(
    client: TestClient, world: World, engine: Engine
) -> None:
    _protect_large_plan(engine)
    assert _create(client, world, "big", plan="large")["deletion_protection"] is True
    small = _create(client, world, "web")
    assert small["deletion_protection"] is False

    changed = client.patch(
        f"{BASE}/web", json={"plan": "large"}, headers=world.auth("tenant-admin")
    )
    assert changed.status_code == 202, changed.text
    assert changed.json()["deletion_protection"] is True
    [update] = _audited(engine, "instance.update")
    assert update.details["changed"]["deletion_protection"] == [False, True]

    # Back to an unprotected plan: the protection stays until it is lifted on purpose.
    back = client.patch(f"{BASE}/web", json={"plan": "small"}, headers=world.auth("tenant-admin"))
    assert back.status_code == 202
    assert back.json()["deletion_protection"] is True
    assert client.delete(f"{BASE}/web", headers=world.auth("tenant-admin")).status_code == 409


def test_plan_protection_keeps_every_shipped_digest() -> None:
    """Deletion protection is release metadata: protecting every plan of every shipped
    release changes no digest, and its metadata shows the change (so it is amended)."""
    catalog = load_catalog()
    releases = [
        catalog.release(service.name, version.version)
        for service in catalog.services.values()
        for version in service.versions
    ]
    assert releases
    for release in releases:
        plans = [p.model_copy(update={"deletion_protection": True}) for p in release.plans]
        protected = release.model_copy(update={"plans": plans})
        assert protected.digest == release.digest == _digest_before_the_field(release)
        assert protected.metadata() != release.metadata(), release.name


def _digest_before_the_field(release: ServiceRelease) -> str:
    """The digest as computed before plans had ``deletion_protection`` (and
    ``retention_days``) at all."""
    body = release.model_dump(
        mode="json",
        exclude={**dict.fromkeys(METADATA_FIELDS, True), "version": set(METADATA_VERSION_FIELDS)},
    )
    for plan in body["plans"]:
        del plan["deletion_protection"], plan["retention_days"]
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()
