"""The lifecycle on the real cluster (through the fault proxy, which counts writes and injects
faults), at the domain level: zero writes on a no-op, prune on upgrade, rollback restores,
faults, and a workload the real deployment controller declares failed.

Tenant slugs carry a random suffix (the cluster is shared); the namespaces of every instance
are deleted when a test ends."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException
from sqlmodel import Session, select

from controlplane.db.engine import make_engine
from controlplane.kube.client import KubeClient
from controlplane.kube.retrying import RetryPolicy
from controlplane.provisioning.models import Instance, Phase, Revision, TargetKind
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from tests.cluster.fixtures import Cluster, cluster, kube  # noqa: F401
from tests.cluster.proxy import FaultProxy
from tests.provisioning.conftest import Platform, make_platform, make_worker, publish
from tests.provisioning.fleet_support import SERVICE as SHOP
from tests.provisioning.fleet_support import shop_release

SUFFIX = secrets.token_hex(2)


def _slug(slug: str) -> str:
    return f"{slug}-{SUFFIX}"


@pytest.fixture
def kube_platform(tmp_path: Path, cluster: Cluster) -> Iterator[Platform]:  # noqa: F811
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    yield make_platform(engine, kind=TargetKind.KUBERNETES, config={})
    with Session(engine) as session:
        namespaces = {row.namespace for row in session.exec(select(Instance)).all()}
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    for namespace in sorted(namespaces):
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)
    engine.dispose()


def _registry(proxy: FaultProxy) -> TargetRegistry:
    # Tiny waits keep the fault test fast; the behaviour (retry, then give up) is the same.
    policy = RetryPolicy(base_delay=0.001, max_delay=0.005, poll_interval=0.2, seed=1)
    port = KubeClient(proxy.api_client(), retry=policy)
    return TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})


def _names(on: Cluster, namespace: str) -> set[str]:
    found = on.objects("ConfigMap", namespace, api_version="v1")
    return {o["metadata"]["name"] for o in found} - {"kube-root-ca.crt"}


def test_lifecycle_noop_prune_rollback_delete(
    kube_platform: Platform,
    kube: FaultProxy,  # noqa: F811
    cluster: Cluster,  # noqa: F811
) -> None:
    p = kube_platform
    worker = make_worker(p, registry=_registry(kube))
    gent = p.tenant(_slug("gent"), "44021")
    namespace = f"{gent.slug}-forms"
    iid = p.create(gent, "forms")
    worker.run_until_idle()
    assert p.get(iid).phase == Phase.READY
    assert {"settings", "legacy"} <= _names(cluster, namespace)

    kube.writes.reset()
    p.make_all_due()
    assert worker.run_until_idle() == 1
    assert kube.writes.total == 0, kube.writes

    p.change(iid, parameters={"greeting": "goeiedag"})
    kube.writes.reset()
    worker.run_until_idle()
    # Only the changed ConfigMap is written (the others kept their digests).
    assert kube.writes.by_kind == {"ConfigMap": 1}
    settings = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
    assert settings is not None
    assert settings["data"]["greeting"] == "goeiedag"

    p.change(iid, version="2.0.0")
    worker.run_until_idle()
    assert "legacy" not in _names(cluster, namespace)
    p.change(iid, version="1.0.0")
    worker.run_until_idle()
    assert "legacy" in _names(cluster, namespace)

    p.delete(iid)
    worker.run_until_idle(timeout=180)
    assert p.get(iid).phase == Phase.DELETED
    assert not cluster.namespace_exists(namespace)
    with Session(p.engine) as session:
        assert [r.number for r in session.exec(select(Revision)).all()] == [1, 2, 3, 4]


def test_thirty_instances_converge_under_faults(
    kube_platform: Platform,
    kube: FaultProxy,  # noqa: F811
    cluster: Cluster,  # noqa: F811
) -> None:
    p = kube_platform
    registry = _registry(kube)
    worker = make_worker(p, registry=registry, batch_size=50)
    tenants = [p.tenant(_slug(f"t{i}"), f"{20000 + i}") for i in range(5)]
    ids = [p.create(tenants[i % 5], f"app{i}") for i in range(30)]
    kube.faults.add(500, probability=0.2)
    kube.faults.add(429, probability=0.05, retry_after=0)
    worker.run_until_idle(timeout=300)
    assert kube.faults.fired > 0
    kube.faults.clear()
    worker.run_until_idle(timeout=120)
    for iid in ids:
        instance = p.get(iid)
        assert instance.phase == Phase.READY, (instance.namespace, instance.message)
    with Session(p.engine) as session:
        revisions = session.exec(select(Revision)).all()
    assert len(revisions) == 30  # one per generation: no duplicate
    expected = {f"{tenants[i % 5].slug}-app{i}" for i in range(30)}
    for namespace in expected:
        assert _names(cluster, namespace) == {"settings", "legacy"}
    all_namespaces = {o["metadata"]["name"] for o in cluster.objects("Namespace", api_version="v1")}
    ours = {n for n in all_namespaces if n.endswith(tuple(f"-app{i}" for i in range(30)))}
    assert {n for n in ours if SUFFIX in n} == expected


def test_failed_workload_makes_the_instance_degraded_with_the_reason(
    kube_platform: Platform,
    kube: FaultProxy,  # noqa: F811
    cluster: Cluster,  # noqa: F811
) -> None:
    # shop 2.0.0 has a Deployment; with a node pool no node has, its pods stay Pending and
    # the deployment controller declares the rollout failed after its progress deadline.
    with Session(kube_platform.engine) as session:
        publish(session, shop_release("2.0.0"))
        session.commit()
    worker = make_worker(kube_platform, registry=_registry(kube))
    iid = kube_platform.create(
        kube_platform.tenant(_slug("gent"), "44021"),
        "shop",
        service=SHOP,
        version="2.0.0",
        parameters={"pool": "none"},
    )

    def settled() -> bool:
        # A rollout in progress is re-checked shortly: run the worker until it is judged.
        worker.run_until_idle(timeout=120)
        return kube_platform.get(iid).phase != Phase.PROVISIONING

    cluster.wait_for("the rollout to be judged", settled, timeout=120)
    instance = kube_platform.get(iid)
    ready = {c["type"]: c for c in instance.conditions}["Ready"]
    assert instance.phase == Phase.DEGRADED
    assert (ready["status"], ready["reason"]) == ("False", "WorkloadsFailed")
    assert "web" in ready["message"]
