"""Install the chart with the memory storage driver into the Kubernetes API emulator
(the ``kube_emulator`` fixture) and look at what the cluster then holds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import NAMESPACE, RELEASE, SCENARIOS, install_into

pytestmark = pytest.mark.slow

try:
    from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401
except ImportError as exc:  # pragma: no cover - only while the emulator is missing
    pytest.skip(f"the Kubernetes API emulator is not available: {exc}", allow_module_level=True)


@pytest.mark.parametrize("scenario", ["default", "postgresql-3-replicas", "ingress"])
def test_install_leaves_the_release_objects_in_the_cluster(
    helm_available: str, kube_emulator: Any, scenario: str
) -> None:
    got = install_into(kube_emulator, SCENARIOS[scenario])
    for obj in got.manifest:
        namespace = None if obj["kind"] in {"ClusterRole", "ClusterRoleBinding"} else NAMESPACE
        stored = kube_emulator.get(obj["kind"], obj["metadata"]["name"], namespace)
        assert stored is not None, f"{obj['kind']}/{obj['metadata']['name']} is not in the cluster"
    api = kube_emulator.get("Deployment", f"{RELEASE}-api", NAMESPACE)
    assert api is not None
    assert api["spec"]["replicas"] == SCENARIOS[scenario].get("api", {}).get("replicas", 1)
    # The memory driver keeps the release out of the cluster: no sh.helm.release Secret.
    release_secrets = [
        s
        for s in kube_emulator.objects("Secret", NAMESPACE)
        if s["metadata"]["name"].startswith("sh.helm.release")
    ]
    assert release_secrets == []
