"""Honest phases on the real cluster: Ready only from observation, Committed otherwise.

A GitOps target with ``observe_kubeconfig`` reads the cluster its GitOps controller feeds:
after the write the instance is Provisioning ("waiting for the GitOps controller"); once the
folder is applied (``kubectl apply --server-side -k``, what Argo CD and Flux do) and the
Deployment is Available, Ready. Without it the target settles at Committed, never Ready. The
Kubernetes target reports Ready only once its Deployments are Available: one whose pods no
node can take stays Provisioning.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from controlplane.kube.client import KubeClient
from controlplane.provisioning.models import Phase
from controlplane.provisioning.reconciling import _phase_for
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.rendering.naming import object_id
from tests.cluster.fixtures import Cluster


def _deployment(namespace: str, name: str, **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27"}],
                    **pod_spec,
                },
            },
        },
    }


def _stack(namespace: str, *objects: dict[str, Any]) -> Stack:
    return Stack(
        tenant="gent",
        instance=f"web-{secrets.token_hex(3)}",
        instance_id="00000000-0000-0000-0000-000000000001",
        namespace=namespace,
        objects=tuple(objects),
        digests={object_id(o): f"sha256:{i}" for i, o in enumerate(objects)},
    )


def _phase(target: Any, stack: Stack) -> tuple[Phase, str]:
    phase, conditions = _phase_for(target.readiness(stack), applied_message="Applied.")
    return phase, conditions["Ready"][2]


def test_an_observing_gitops_target_is_ready_only_once_the_controller_applied_it(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    observer = KubeClient.from_kubeconfig(str(cluster.kubeconfig), None)
    target = GitOpsTarget(tmp_path / "gitops", observer=observer)
    stack = _stack(namespace, _deployment(namespace, "web"))
    target.apply(stack)

    phase, message = _phase(target, stack)
    assert phase == Phase.PROVISIONING
    assert "waiting for the GitOps controller to apply it" in message
    assert str(tmp_path) not in message

    # The test plays the GitOps controller.
    folder = target.folder(stack.tenant, stack.instance)
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops", "-k", str(folder))
    settled = cluster.wait_for(
        "the applied Deployment to be observed Ready",
        lambda: (_phase(target, stack)[0] == Phase.READY) or None,
    )
    assert settled
    phase, message = _phase(target, stack)
    assert phase == Phase.READY
    assert "Committed (sha256:" in message


def test_a_gitops_target_that_does_not_observe_settles_at_committed(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    target = GitOpsTarget(tmp_path / "gitops")
    stack = _stack(namespace, _deployment(namespace, "web"))
    target.apply(stack)
    folder = target.folder(stack.tenant, stack.instance)
    # Even applied and running, a target that cannot look says Committed, never Ready.
    cluster.kubectl("apply", "--server-side", "-k", str(folder))
    phase, message = _phase(target, stack)
    assert phase == Phase.COMMITTED
    assert f"as gent/{stack.instance} (sha256:" in message
    assert "does not observe the cluster" in message
    assert str(tmp_path) not in message


def test_the_kubernetes_target_is_not_ready_while_a_deployment_is_not_available(
    cluster: Cluster, namespace: str
) -> None:
    target = KubernetesTarget(KubeClient.from_kubeconfig(str(cluster.kubeconfig), None))
    nowhere = {"nodeSelector": {"city-platform.test/none": secrets.token_hex(4)}}
    stack = _stack(namespace, _deployment(namespace, "stuck", **nowhere))
    target.apply(stack)
    # The controller has seen the Deployment, its pod stays Pending: no node matches.
    cluster.wait_for(
        "the Deployment controller to observe the Deployment",
        lambda: (
            (cluster.get("Deployment", "stuck", namespace) or {})
            .get("status", {})
            .get("observedGeneration")
        ),
    )
    phase, message = _phase(target, stack)
    assert phase == Phase.PROVISIONING, message
    assert "stuck" in message
