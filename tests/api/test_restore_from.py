"""Creating an instance from another instance's backups (issue 18): what admission checks.

``restore_from`` names an instance of the same tenant (never another tenant's), of the same
service, whose target runs databases through CloudNativePG and backs them up to the same
object store as the new instance's target. Every refusal names what to fix and leaves
nothing behind (no instance, no audit event, no queued reconcile).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from controlplane.auth.models import AuditEvent
from controlplane.catalog.publishing import publish_release
from controlplane.provisioning.models import (
    Instance,
    ReconcileRequest,
    Target,
    TargetGrant,
    TargetKind,
)
from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.factories import demo_release

BASE = "/api/v1/tenants/gent/instances"
STORE = "s3://city-backups/flanders"


def _target(
    session: Session, name: str, *, capable: bool = True, store: str | None = STORE
) -> None:
    row = Target(
        name=name,
        kind=TargetKind.KUBERNETES,
        config={
            "kubeconfig": "/nowhere/kubeconfig",
            **({"backup_destination": store} if store else {}),
        },
        kubernetes_version="1.34",
        capabilities=["cloudnative-pg"] if capable else [],
    )
    session.add(row)
    session.flush()
    for slug in ("gent", "brugge"):
        tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
        session.add(TargetGrant(target_id=row.id, tenant_id=tenant.id, granted_by="tests"))


@pytest.fixture
def targets(engine: Engine, world: World) -> None:
    with Session(engine) as session:
        _target(session, "cnpg-a")
        _target(session, "cnpg-b", store="s3://elsewhere/flanders")
        _target(session, "plain", capable=False)
        publish_release(session, demo_release("1.0.0", name="other"))
        session.commit()


def _post(client: TestClient, world: World, who: str = "tenant-admin", **body: Any) -> Any:
    payload = {"service": "demo", "plan": "small", **body}
    return client.post(BASE, json=payload, headers=world.auth(who))


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.exec(select(func.count()).select_from(Instance)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
            s.exec(select(func.count()).select_from(ReconcileRequest)).one(),
        )


def test_restore_records_the_source_and_shows_it(
    client: TestClient, world: World, engine: Engine, targets: None
) -> None:
    assert _post(client, world, name="forms", target="cnpg-a").status_code == 202
    at = datetime.now(UTC)  # after the source was created, before the request
    r = _post(
        client, world, name="forms-copy", target="cnpg-a",
        restore_from={"instance": "forms", "time": at.isoformat()},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    assert r.json()["restored_from"]["instance"] == "forms"
    with Session(engine) as s:
        source = s.exec(select(Instance).where(Instance.name == "forms")).one()
        copy = s.exec(select(Instance).where(Instance.name == "forms-copy")).one()
        assert copy.restore_from == {
            "instance": "forms",
            "instance_id": str(source.id),
            "namespace": source.namespace,
            "time": at.isoformat(),
        }
        audited = s.exec(
            select(AuditEvent).where(AuditEvent.resource.endswith("/forms-copy"))
        ).one()  # type: ignore[attr-defined]
        assert audited.details["restoreFrom"]["instance"] == "forms"
    # Without a time: the latest the backups reach.
    latest = _post(
        client, world, name="forms-now", target="cnpg-a", restore_from={"instance": "forms"}
    )
    assert latest.status_code == 202, latest.text
    assert latest.json()["restored_from"] == {"instance": "forms", "time": None}
    shown = client.get(f"{BASE}/forms-now", headers=world.auth("tenant-viewer")).json()
    assert shown["restored_from"]["instance"] == "forms"
    assert (
        client.get(f"{BASE}/forms", headers=world.auth("tenant-viewer")).json()["restored_from"]
        is None
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"name": "c", "target": "cnpg-a", "restore_from": {"instance": "nope"}}, 404,
         "no instance 'nope' in this tenant"),
        ({"name": "c", "target": "cnpg-a", "service": "other",
          "restore_from": {"instance": "forms"}}, 422, "runs demo, not other"),
        ({"name": "c", "target": "plain", "restore_from": {"instance": "forms"}}, 409,
         "does not run databases through CloudNativePG"),
        ({"name": "c", "target": "cnpg-b", "restore_from": {"instance": "forms"}}, 409,
         "--target cnpg-a"),
        ({"name": "c", "target": "cnpg-a",
          "restore_from": {"instance": "forms", "time": "2999-01-01T00:00:00Z"}}, 422,
         "in the future"),
        ({"name": "c", "target": "cnpg-a",
          "restore_from": {"instance": "forms", "time": "2001-01-01T00:00:00Z"}}, 422,
         "did not exist yet"),
        ({"name": "c", "target": "cnpg-a",
          "restore_from": {"instance": "forms", "time": "2026-11-28T09:30:00"}}, 422,
         "restore_from"),
    ],
)  # fmt: skip
def test_refusals_name_what_to_fix_and_change_nothing(
    client: TestClient,
    world: World,
    engine: Engine,
    targets: None,
    body: dict[str, Any],
    status: int,
    words: str,
) -> None:
    assert _post(client, world, name="forms", target="cnpg-a").status_code == 202
    before = _counts(engine)
    r = _post(client, world, **body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert _counts(engine) == before


def test_another_tenants_instance_is_never_a_source(
    client: TestClient, world: World, engine: Engine, targets: None
) -> None:
    assert _post(client, world, name="forms", target="cnpg-a").status_code == 202
    before = _counts(engine)
    r = client.post(
        "/api/v1/tenants/brugge/instances",
        json={"name": "stolen", "service": "demo", "plan": "small", "target": "cnpg-a",
              "restore_from": {"instance": "forms"}},
        headers=world.auth("other-admin"),
    )  # fmt: skip
    assert r.status_code == 404, r.text
    assert "gent" not in r.text
    assert _counts(engine) == before


def test_source_on_a_target_without_backups(
    client: TestClient, world: World, engine: Engine, targets: None
) -> None:
    assert _post(client, world, name="forms", target="plain").status_code == 202
    r = _post(client, world, name="c", target="cnpg-a", restore_from={"instance": "forms"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "backups_not_kept"
    assert "instance 'forms'" in r.json()["detail"]
