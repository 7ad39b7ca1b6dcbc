"""The provisioning lifecycle on a real cluster (opt-in: ``pytest --with-e2e`` with
``KUBECONFIG`` pointing at a kind/k3s cluster you may write to).

The same scenario as tests/provisioning/test_kubernetes_lifecycle.py, against a real API
server: create → Ready, no-op resync, upgrade prunes, rollback restores, delete → gone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.db.engine import make_engine
from controlplane.kube.target import KubeTarget
from controlplane.provisioning.models import Phase, TargetKind
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from tests.provisioning.conftest import Platform, make_platform, make_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster_platform(tmp_path: Path) -> Iterator[tuple[Platform, KubeTarget]]:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG is not set: point it at a disposable kind or k3s cluster")
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    port = KubeTarget.from_kubeconfig(os.environ["KUBECONFIG"], os.environ.get("KUBE_CONTEXT"))
    yield make_platform(engine, kind=TargetKind.KUBERNETES, config={}), port
    engine.dispose()


def test_lifecycle_on_a_real_cluster(cluster_platform: tuple[Platform, KubeTarget]) -> None:
    platform, port = cluster_platform
    registry = TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})
    worker = make_worker(platform, registry=registry)
    name = f"e2e{uuid.uuid4().hex[:6]}"
    iid = platform.create(platform.tenant("e2e", "99999"), name)
    worker.run_until_idle(timeout=300)
    assert platform.get(iid).phase == Phase.READY
    namespace = f"e2e-{name}"
    assert port.observe(namespace, ["v1/ConfigMap/legacy"])["v1/ConfigMap/legacy"] is not None

    platform.change(iid, version="2.0.0")
    worker.run_until_idle(timeout=300)
    assert port.observe(namespace, ["v1/ConfigMap/legacy"])["v1/ConfigMap/legacy"] is None
    platform.change(iid, version="1.0.0")
    worker.run_until_idle(timeout=300)
    assert port.observe(namespace, ["v1/ConfigMap/legacy"])["v1/ConfigMap/legacy"] is not None

    platform.delete(iid)
    worker.run_until_idle(timeout=600)
    assert platform.get(iid).phase == Phase.DELETED
    assert (
        port.observe(namespace, ["v1/Namespace/" + namespace]).get("v1/Namespace/" + namespace)
        is None
    )
