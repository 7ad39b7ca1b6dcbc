"""The Kubernetes port against a real cluster (opt-in: ``pytest --with-e2e``, ``KUBECONFIG``).

Runs the same scenario as the emulator tests: apply a stack, wait for readiness, prune what a
newer version dropped, delete the namespace. Images must be pullable by the cluster (kind/k3s
with network access).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from controlplane.kube import KubeTarget, RetryPolicy
from tests.kube.stacks import ids, stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def target() -> KubeTarget:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("set KUBECONFIG to the cluster the e2e suite may use")
    return KubeTarget.from_kubeconfig(retry=RetryPolicy(poll_interval=1.0))


def test_lifecycle_on_a_real_cluster(target: KubeTarget) -> None:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    old = stack(namespace, instance_id=namespace)
    try:
        result = target.apply(old)
        assert set(result.applied) == ids(old)

        deadline = time.monotonic() + 300
        new = stack(namespace, instance_id=namespace, extra=False)
        while not (verdict := target.readiness(new)).ready:
            assert not verdict.failed, verdict.messages
            assert time.monotonic() < deadline, verdict.messages
            time.sleep(2)

        assert target.apply(new, only=set()).writes == 0
        deleted = target.prune(
            namespace, keep=ids(new), inventory=sorted(ids(old)), instance_id=namespace
        )
        assert set(deleted) == ids(old) - ids(new)
        assert all(v is None for v in target.observe(namespace, sorted(deleted)).values())
    finally:
        target.delete_namespace(namespace, wait=True, timeout=300)
    assert target.observe(namespace, [f"v1/Namespace/{namespace}"]) == {
        f"v1/Namespace/{namespace}": None
    }
