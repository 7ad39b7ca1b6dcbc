"""Retention on delete (issue 18) on the real cluster, through the real reconciler.

matomo has two volumes: its application files (``html``, mounted by a Deployment) and its
MariaDB data (``mariadb-data``, mounted by a StatefulSet; the shipped StatefulSets mount
standalone claims, none uses ``volumeClaimTemplates``). Delete (without purge) must
stop every workload and keep every claim (same UIDs: the same volumes), its Secrets and
its namespace; restore must bring it back to Ready on those very claims; purge must leave
nothing (the namespace gone or terminating).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from pathlib import Path

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException
from sqlmodel import Session

from controlplane.catalog.loading import load_catalog
from controlplane.provisioning import instances
from controlplane.provisioning.models import Instance, Phase
from controlplane.tenants.models import Tenant
from tests.cluster.fixtures import Cluster
from tests.cluster.platform import STEP_TIMEOUT, ClusterPlatform, describe
from tests.factories import accept_parameters

SERVICE = "matomo"
WORKLOADS = ("Deployment", "StatefulSet", "CronJob", "Job")


def _claims(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Claim name -> UID."""
    return {
        c["metadata"]["name"]: c["metadata"]["uid"]
        for c in cluster.objects("PersistentVolumeClaim", namespace, api_version="v1")
        if not c["metadata"].get("deletion_timestamp")
    }


def _workloads(cluster: Cluster, namespace: str) -> list[str]:
    found = []
    for kind in WORKLOADS:
        api = "batch/v1" if kind in ("CronJob", "Job") else "apps/v1"
        found += [
            f"{kind}/{o['metadata']['name']}"
            for o in cluster.objects(kind, namespace, api_version=api)
            if not o["metadata"].get("deletion_timestamp")
        ]
    return found


def _change(cp: ClusterPlatform, iid: uuid.UUID, what: str) -> None:
    with Session(cp.platform.engine) as session:
        row = session.get(Instance, iid)
        assert row is not None
        if what == "restore":
            instances.restore_instance(session, tenant=_tenant(session, row), instance=row)
        else:
            instances.delete_instance(session, instance=row, purge=what == "purge")
        session.commit()


def _tenant(session: Session, row: Instance) -> Tenant:
    tenant = session.get(Tenant, row.tenant_id)
    assert tenant is not None
    return tenant


def _retained(cp: ClusterPlatform, iid: uuid.UUID) -> Instance:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        cp.worker.run_once()
        instance = cp.platform.get(iid)
        if instance.observed_generation == instance.generation:
            assert instance.phase == Phase.RETAINED, describe(instance)
            return instance
        if time.monotonic() > deadline:
            pytest.fail(f"not Retained after {STEP_TIMEOUT:.0f} s. {describe(instance)}")
        time.sleep(0.5)


def test_delete_retains_the_volumes_restore_reuses_them_purge_removes_all(
    cluster: Cluster, tmp_path: Path
) -> None:
    releases = [r for r in load_catalog().releases() if r.name == SERVICE]
    cp = ClusterPlatform(tmp_path, cluster.api_client, releases=releases[-1:])
    slug = f"rt{secrets.token_hex(3)}"
    namespace = f"{slug}-{SERVICE}"
    try:
        p = cp.platform
        iid = p.create(
            p.tenant(slug, "44021"),
            SERVICE,
            service=SERVICE,
            version=releases[-1].version.version,
            plan="small",
        )
        cp.converge(iid, "create")
        claims = _claims(cluster, namespace)
        kinds = {w.split("/")[0] for w in _workloads(cluster, namespace)}
        assert {"Deployment", "StatefulSet"} <= kinds, kinds
        # The database's volume (its StatefulSet mounts the claim) and the application's.
        assert {"mariadb-data", "html"} <= set(claims), claims
        secrets_before = {
            s["metadata"]["name"] for s in cluster.objects("Secret", namespace, api_version="v1")
        }

        _change(cp, iid, "delete")
        retained = _retained(cp, iid)
        assert retained.purge_after is not None
        assert retained.deleted_at is None
        cluster.wait_for(
            "the workloads to be gone", lambda: not _workloads(cluster, namespace), timeout=120
        )
        assert cluster.namespace_exists(namespace)
        assert _claims(cluster, namespace) == claims, "a claim was deleted or replaced"
        kept = {
            s["metadata"]["name"] for s in cluster.objects("Secret", namespace, api_version="v1")
        }
        assert kept >= secrets_before, "a Secret the data needs was pruned"
        assert not cluster.objects("Service", namespace, api_version="v1")

        _change(cp, iid, "restore")
        restored = cp.converge(iid, "restore")
        assert restored.phase == Phase.READY
        assert restored.purge_after is None
        assert _claims(cluster, namespace) == claims, "restore did not reuse the same claims"

        _change(cp, iid, "purge")
        purged = cp.converge(iid, "purge")
        assert purged.phase == Phase.DELETED, describe(purged)
        live = cluster.get("Namespace", namespace, api_version="v1")
        assert live is None or live["metadata"].get("deletion_timestamp")
    finally:
        cp.close()
        with contextlib.suppress(ApiException):
            kubernetes.client.CoreV1Api(cluster.api_client).delete_namespace(namespace)


def test_a_plan_change_not_yet_applied_does_not_grow_a_retained_volume(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Found by the soak: delete right after a plan change up. Retention kept the data
    objects as the new plan renders them, so it asked to grow the claims under the old
    quota (which it does not keep) and the target refused it on every retry: the instance
    never got to Retained. Claims are kept as they are; restore applies the new plan."""
    releases = [r for r in load_catalog().releases() if r.name == SERVICE]
    cp = ClusterPlatform(tmp_path, cluster.api_client, releases=releases[-1:])
    slug = f"rq{secrets.token_hex(3)}"
    namespace = f"{slug}-{SERVICE}"
    try:
        p = cp.platform
        iid = p.create(
            p.tenant(slug, "44021"),
            SERVICE,
            service=SERVICE,
            version=releases[-1].version.version,
            plan="small",
        )
        cp.converge(iid, "create")
        sizes = {
            c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
            for c in cluster.objects("PersistentVolumeClaim", namespace, api_version="v1")
        }
        with Session(p.engine) as session:
            row = session.get(Instance, iid)
            assert row is not None
            instances.update_instance(
                session,
                tenant=_tenant(session, row),
                instance=row,
                plan="medium",
                check_parameters=accept_parameters,
            )
            session.commit()
        _change(cp, iid, "delete")  # before any worker applied the plan change
        _retained(cp, iid)
        cluster.wait_for(
            "the workloads to be gone", lambda: not _workloads(cluster, namespace), timeout=120
        )
        after = {
            c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
            for c in cluster.objects("PersistentVolumeClaim", namespace, api_version="v1")
        }
        assert after == sizes
        _change(cp, iid, "restore")
        restored = cp.converge(iid, "restore")
        assert restored.phase == Phase.READY, describe(restored)
        assert restored.plan == "medium"
    finally:
        cp.close()
        with contextlib.suppress(ApiException):
            kubernetes.client.CoreV1Api(cluster.api_client).delete_namespace(namespace)
