"""The lifecycle on the Kubernetes emulator (real ``kubernetes`` client over loopback), at
the domain level: zero writes on a no-op, prune on upgrade, rollback restores, faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from controlplane.db.engine import make_engine
from controlplane.kube.retrying import RetryPolicy
from controlplane.kube.target import KubeTarget
from controlplane.provisioning.models import Instance, Phase, Revision, TargetKind
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from tests.kube_emulator import KubeEmulator
from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401
from tests.provisioning.conftest import Platform, make_platform, make_worker, publish
from tests.provisioning.fleet_support import SERVICE as SHOP
from tests.provisioning.fleet_support import shop_release


@pytest.fixture
def kube_platform(tmp_path: Path, kube_emulator: KubeEmulator) -> Iterator[Platform]:  # noqa: F811
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    yield make_platform(engine, kind=TargetKind.KUBERNETES, config={})
    engine.dispose()


def _registry(emulator: KubeEmulator) -> TargetRegistry:
    # Tiny waits keep the fault test fast; the behaviour (retry, then give up) is the same.
    policy = RetryPolicy(base_delay=0.001, max_delay=0.005, poll_interval=0.01, seed=1)
    port = KubeTarget(emulator.api_client(), retry=policy)
    return TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})


def _names(emulator: KubeEmulator, namespace: str) -> set[str]:
    return {o["metadata"]["name"] for o in emulator.objects("ConfigMap", namespace)}


def test_lifecycle_noop_prune_rollback_delete(
    kube_platform: Platform,
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p = kube_platform
    worker = make_worker(p, registry=_registry(kube_emulator))
    iid = p.create(p.tenant("gent", "44021"), "forms")
    worker.run_until_idle()
    assert p.get(iid).phase == Phase.READY
    assert {"settings", "legacy"} <= _names(kube_emulator, "gent-forms")

    kube_emulator.writes.reset()
    p.make_all_due()
    assert worker.run_until_idle() == 1
    assert kube_emulator.writes.total == 0, kube_emulator.writes

    p.change(iid, parameters={"greeting": "goeiedag"})
    kube_emulator.writes.reset()
    worker.run_until_idle()
    # Only the changed ConfigMap is written (the others kept their digests).
    assert kube_emulator.writes.by_kind == {"ConfigMap": 1}
    settings = kube_emulator.get("ConfigMap", "settings", "gent-forms")
    assert settings is not None
    assert settings["data"]["greeting"] == "goeiedag"

    p.change(iid, version="2.0.0")
    worker.run_until_idle()
    assert "legacy" not in _names(kube_emulator, "gent-forms")
    p.change(iid, version="1.0.0")
    worker.run_until_idle()
    assert "legacy" in _names(kube_emulator, "gent-forms")

    p.delete(iid)
    worker.run_until_idle()
    assert p.get(iid).phase == Phase.DELETED
    assert kube_emulator.get("Namespace", "gent-forms") is None
    with Session(p.engine) as session:
        assert [r.number for r in session.exec(select(Revision)).all()] == [1, 2, 3, 4]


def test_hundred_instances_converge_under_faults(
    kube_platform: Platform,
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p = kube_platform
    registry = _registry(kube_emulator)
    worker = make_worker(p, registry=registry, batch_size=50)
    tenants = [p.tenant(f"t{i}", f"{20000 + i}") for i in range(10)]
    ids = [p.create(tenants[i % 10], f"app{i}") for i in range(100)]
    kube_emulator.faults.add(500, probability=0.2)
    kube_emulator.faults.add(429, probability=0.05, retry_after=0)
    worker.run_until_idle(timeout=120)
    kube_emulator.faults.clear()
    worker.run_until_idle(timeout=60)
    for iid in ids:
        instance = p.get(iid)
        assert instance.phase == Phase.READY, (instance.namespace, instance.message)
    with Session(p.engine) as session:
        revisions = session.exec(select(Revision)).all()
    assert len(revisions) == 100  # one per generation: no duplicate
    for tenant_index in range(10):
        for i in range(tenant_index, 100, 10):
            namespace = f"t{tenant_index}-app{i}"
            assert _names(kube_emulator, namespace) == {"settings", "legacy"}
    all_namespaces = {o["metadata"]["name"] for o in kube_emulator.objects("Namespace")}
    expected = {f"t{i % 10}-app{i}" for i in range(100)}
    assert expected <= all_namespaces
    assert not {n for n in all_namespaces if n.startswith("t") and "-app" in n} - expected


def test_failed_workload_makes_the_instance_degraded_with_the_reason(
    kube_platform: Platform,
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    # shop 2.0.0 has a Deployment; the emulator reports it failed (past its progress deadline).
    with Session(kube_platform.engine) as session:
        publish(session, shop_release("2.0.0"))
        session.commit()
    kube_emulator.set_ready("fail", kind="Deployment")
    worker = make_worker(kube_platform, registry=_registry(kube_emulator))
    iid = kube_platform.create(kube_platform.tenant("gent", "44021"), "shop")
    with Session(kube_platform.engine) as session:
        instance = session.get(Instance, iid)
        assert instance is not None
        instance.service, instance.version = SHOP, "2.0.0"
        session.add(instance)
        session.commit()
    worker.run_until_idle()

    instance = kube_platform.get(iid)
    ready = {c["type"]: c for c in instance.conditions}["Ready"]
    assert instance.phase == Phase.DEGRADED
    assert (ready["status"], ready["reason"]) == ("False", "WorkloadsFailed")
    assert "web" in ready["message"]
