"""Retention on delete (issue 18) at the domain level, on the GitOps target: delete keeps
the data objects until the purge date, restore brings the stack back, purge (asked for, or
by the worker once the date passed) removes everything; usage and audit follow."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from controlplane.db.types import utcnow
from controlplane.provisioning import instances, retention
from controlplane.provisioning.admission import TenantNotActive
from controlplane.provisioning.models import Instance, Phase, UsageEvent, UsageKind
from controlplane.provisioning.targets import Stack
from controlplane.tenants.models import Tenant, TenantStatus
from tests.provisioning.conftest import Platform, make_worker


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _delete(p: Platform, iid: uuid.UUID, *, purge: bool = False) -> instances.Change:
    with Session(p.engine, expire_on_commit=False) as session:
        row = session.get(Instance, iid)
        assert row is not None
        change = instances.delete_instance(session, instance=row, purge=purge)
        session.commit()
        return change


def _restore(p: Platform, iid: uuid.UUID) -> None:
    with Session(p.engine) as session:
        row = session.get(Instance, iid)
        assert row is not None
        instances.restore_instance(session, tenant=_tenant(session, row), instance=row)
        session.commit()


def _tenant(session: Session, row: Instance) -> Tenant:
    tenant = session.get(Tenant, row.tenant_id)
    assert tenant is not None
    return tenant


def _usage(p: Platform, iid: uuid.UUID) -> list[str]:
    with Session(p.engine) as session:
        rows = session.exec(
            select(UsageEvent).where(UsageEvent.instance_id == iid).order_by(col(UsageEvent.at))
        ).all()
        return [str(r.kind) for r in rows]


def test_data_stack_keeps_volumes_secrets_and_the_namespace_only() -> None:
    ids = [
        "v1/Namespace/gent-web",
        "v1/PersistentVolumeClaim/data",
        "v1/Secret/db",
        "bitnami.com/v1alpha1/SealedSecret/db",
        "apps/v1/StatefulSet/db",
        "apps/v1/Deployment/web",
        "v1/Service/web",
        "networking.k8s.io/v1/Ingress/web",
        "v1/ConfigMap/settings",
        "batch/v1/CronJob/cleanup",
    ]
    objects = tuple(_object(oid) for oid in ids)
    stack = Stack("gent", "web", "id", "gent-web", objects, dict.fromkeys(ids, "d"))
    kept = retention.data_stack(stack)
    assert sorted(kept.digests) == sorted(ids[:4])
    assert kept.digests == dict.fromkeys(ids[:4], "d")  # kept as rendered: same digests


def _object(oid: str, spec: dict[str, object] | None = None) -> dict[str, object]:
    api, kind, name = oid.rsplit("/", 2)
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name},
        **({"spec": spec} if spec else {}),
    }


def test_a_cloudnative_pg_database_is_kept_hibernated_with_its_schedule_suspended() -> None:
    """Deleting the Cluster would delete its claims (it owns them), deleting the schedule
    its Backup objects: a retained instance keeps both, the database stopped."""
    cnpg = "postgresql.cnpg.io/v1"
    objects = (
        _object("v1/PersistentVolumeClaim/files"),
        _object(f"{cnpg}/Cluster/postgres", {"instances": 1}),
        _object(f"{cnpg}/ScheduledBackup/postgres-daily", {"schedule": "0 0 2 * * *"}),
        _object(f"{cnpg}/Database/datastore", {"name": "datastore"}),
        _object("apps/v1/Deployment/web"),
        _object("example.com/v1/Cluster/postgres-lookalike"),
    )
    ids = [f"{o['apiVersion']}/{o['kind']}/{o['metadata']['name']}" for o in objects]  # type: ignore[index]
    stack = Stack("gent", "web", "id", "gent-web", objects, dict.fromkeys(ids, "sha256:rendered"))
    kept = retention.data_stack(stack)
    by_kind = {o["kind"]: o for o in kept.objects}
    assert sorted(by_kind) == ["Cluster", "Database", "PersistentVolumeClaim", "ScheduledBackup"]
    assert by_kind["Cluster"]["metadata"]["annotations"] == {"cnpg.io/hibernation": "on"}
    assert by_kind["ScheduledBackup"]["spec"] == {"schedule": "0 0 2 * * *", "suspend": True}
    # The rendered objects are untouched, and the changed forms carry their own digests,
    # so a restore (which applies the rendered ones) is a change the target writes.
    assert "annotations" not in objects[1]["metadata"]  # type: ignore[operator]
    assert kept.digests[ids[1]] != "sha256:rendered"
    assert kept.digests[ids[2]] != "sha256:rendered"
    assert kept.digests[ids[3]] == "sha256:rendered"
    assert kept.digests[ids[0]] == "sha256:rendered"


def test_the_barman_cloud_object_store_is_kept_as_rendered() -> None:
    """The Barman Cloud Plugin's ObjectStore says where the database's backups and WAL are
    (what a restore reads): a retained instance keeps it unchanged; a lookalike kind of
    another group is pruned."""
    store = _object(
        "barmancloud.cnpg.io/v1/ObjectStore/postgres",
        {"retentionPolicy": "30d", "configuration": {"destinationPath": "s3://b/gent-web"}},
    )
    objects = (store, _object("example.com/v1/ObjectStore/postgres"))
    ids = [f"{o['apiVersion']}/{o['kind']}/{o['metadata']['name']}" for o in objects]  # type: ignore[index]
    stack = Stack("gent", "web", "id", "gent-web", objects, dict.fromkeys(ids, "sha256:rendered"))
    kept = retention.data_stack(stack)
    assert kept.objects == (store,)
    assert kept.digests == {ids[0]: "sha256:rendered"}
    assert retention.is_data("barmancloud.cnpg.io/v1/ObjectStore/postgres-origin")


def test_delete_retains_restore_brings_back_purge_removes(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    iid = p.create(p.tenant("gent", "44021"), "forms")
    worker.run_until_idle()
    folder = tmp_path / "tree" / "gent" / "forms"
    full = _files(folder)
    assert any("configmap" in n for n in full)

    before = utcnow()
    change = _delete(p, iid)
    assert change.instance.phase == Phase.DELETING  # Retained once the workloads stopped
    purge_after = change.instance.purge_after
    assert purge_after is not None
    assert timedelta(days=30) <= purge_after - before < timedelta(days=30, minutes=1)
    worker.run_until_idle()
    retained = p.get(iid)
    assert retained.phase == Phase.RETAINED
    assert retained.observed_generation == retained.generation
    assert retained.deleted_at is None
    assert "instance restore forms" in (retained.message or "")
    kept = _files(folder)
    assert kept
    assert not any("configmap" in n for n in kept), kept
    assert any("secret" in n for n in kept)
    assert any("namespace" in n for n in kept)
    # Deleting again changes nothing; changing a retained instance is refused.
    assert _delete(p, iid).diff == {}
    with Session(p.engine) as session:
        row = session.get(Instance, iid)
        assert row is not None
        with pytest.raises(instances.InstanceRetained) as refused:
            instances.set_deletion_protection(session, instance=row, protected=True)
        assert refused.value.hint == "cityctl instance restore forms"

    # A suspended tenant's instance is not started again.
    with Session(p.engine) as session:
        row = session.get(Instance, iid)
        assert row is not None
        tenant = _tenant(session, row)
        tenant.status = TenantStatus.SUSPENDED
        with pytest.raises(TenantNotActive):
            instances.restore_instance(session, tenant=tenant, instance=row)
        session.rollback()

    _restore(p, iid)
    worker.run_until_idle()
    restored = p.get(iid)
    assert restored.phase == Phase.COMMITTED
    assert restored.purge_after is None
    assert _files(folder) == full
    with Session(p.engine) as session:
        row = session.get(Instance, iid)
        assert row is not None
        with pytest.raises(instances.InstanceNotRetained) as not_retained:
            instances.restore_instance(session, tenant=_tenant(session, row), instance=row)
        assert "not retained" in not_retained.value.detail

    _delete(p, iid)
    worker.run_until_idle()
    assert p.get(iid).phase == Phase.RETAINED
    _delete(p, iid, purge=True)
    worker.run_until_idle()
    gone = p.get(iid)
    assert gone.phase == Phase.DELETED
    assert gone.deleted_at is not None
    assert not folder.exists()
    assert _usage(p, iid) == ["started", "retained", "plan_changed", "retained", "stopped"]


def test_the_worker_purges_expired_retention_and_audits_it(gitops_platform: Platform) -> None:
    p = gitops_platform
    worker = make_worker(p)
    tenant = p.tenant("gent", "44021")
    expired, kept, protected = (p.create(tenant, n) for n in ("old", "new", "guarded"))
    worker.run_until_idle()
    for iid in (expired, kept, protected):
        _delete(p, iid)
    worker.run_until_idle()
    with Session(p.engine) as session:
        for iid, when in ((expired, -1), (protected, -1)):
            row = session.get(Instance, iid)
            assert row is not None
            row.purge_after = utcnow() + timedelta(days=when)
            row.deletion_protection = iid == protected
            session.add(row)
        session.commit()

    assert worker.purge_expired() == 1
    assert worker.purge_expired() == 0  # each once
    worker.run_until_idle()
    assert p.get(expired).phase == Phase.DELETED
    assert p.get(kept).phase == Phase.RETAINED
    assert p.get(protected).phase == Phase.RETAINED
    with Session(p.engine) as session:
        [event] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "instance.purge")
        ).all()
    assert (event.actor, event.resource) == ("system:worker", "instance:gent/old")
    assert event.details["expired"] is True
    assert _usage(p, expired)[-2:] == [UsageKind.RETAINED, UsageKind.STOPPED]


def test_retention_writes_everything_drifted_but_the_claims() -> None:
    drifted = {
        "kustomization.yaml",  # a GitOps target names its listing file too
        "v1/PersistentVolumeClaim/data",
        "v1/Secret/db",
        "postgresql.cnpg.io/v1/Cluster/postgres",
    }
    assert retention.to_write(drifted) == drifted - {"v1/PersistentVolumeClaim/data"}
