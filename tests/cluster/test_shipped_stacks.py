"""Every service x version x plan of the shipped catalogue, on the real cluster.

Each stack is applied through the Kubernetes target (server-side apply, the platform's field
manager) into its own namespace, admitted by the real apiserver (Pod Security "restricted",
the plan's ResourceQuota and LimitRange), and must become Ready through the real controllers
(Deployments → ReplicaSets → Pods scheduled onto kwok nodes; StatefulSets with their PVCs
bound by the host-path provisioner). A resync then must find no drift: what the apiserver
adds by defaulting is not a change. Finally the namespace goes through the real namespace
controller and nothing of the stack is left.

The stacks are applied all at once by a module fixture (so the tier takes one settling time,
not 42); each parametrised test then judges one stack.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.kube.client import KubeClient
from controlplane.provisioning.targets import Readiness, Stack
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.rendering import Renderer, TenantRef
from tests.cluster.fixtures import Cluster
from tests.cluster.stacks import render_stack

RELEASES = [(release, plan.name) for release in load_catalog().releases() for plan in release.plans]
IDS = [f"{r.name}@{r.version.version}:{plan}" for r, plan in RELEASES]
SERVER_SECRET = b"cluster-tier-secret"
READY_TIMEOUT = 300.0


@dataclass
class Applied:
    stack: Stack
    error: BaseException | None = None
    readiness: Readiness | None = None


@pytest.fixture(scope="module")
def target(cluster: Cluster) -> Iterator[KubernetesTarget]:
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield KubernetesTarget(port, name="cluster-tier", delete_timeout=180)
    port.close()


@pytest.fixture(scope="module")
def applied(target: KubernetesTarget) -> Iterator[dict[str, Applied]]:
    renderer = Renderer(server_secret=SERVER_SECRET, kubernetes_version="1.33")
    # A tenant slug of its own per run, so a rerun against a reused cluster meets no leftovers.
    tenant = TenantRef(slug=f"s{secrets.token_hex(2)}", name="Shipped", nis_code="44021")
    stacks = {
        key: Applied(render_stack(renderer, release, plan, tenant))
        for key, (release, plan) in zip(IDS, RELEASES, strict=True)
    }

    def apply(item: Applied) -> None:
        try:
            target.apply(item.stack)
        except Exception as exc:  # judged per stack by the tests below
            item.error = exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(apply, stacks.values()))

    # One settling time for all: poll until every applied stack is ready or failed, or time out.
    deadline = time.monotonic() + READY_TIMEOUT
    pending = {k for k, a in stacks.items() if a.error is None}
    while pending and time.monotonic() < deadline:
        for key in sorted(pending):
            result = target.readiness(stacks[key].stack)
            stacks[key].readiness = result
            if result.ready or result.failed:
                pending.discard(key)
        if pending:
            time.sleep(1.0)
    yield stacks

    def delete(item: Applied) -> None:
        s = item.stack
        target.delete(tenant=s.tenant, instance=s.instance, namespace=s.namespace)

    # Deleting is mostly waiting for the namespace controller (pods' grace periods): overlap it.
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(delete, stacks.values()))


@pytest.mark.parametrize("key", IDS)
def test_stack_is_admitted_and_becomes_ready(applied: dict[str, Applied], key: str) -> None:
    item = applied[key]
    assert item.error is None, f"the apiserver refused {key}: {item.error}"
    assert item.readiness is not None
    assert item.readiness.ready, f"{key} not Ready after {READY_TIMEOUT:.0f} s: {item.readiness}"


@pytest.mark.parametrize("key", IDS)
def test_resync_of_a_ready_stack_finds_no_drift(
    applied: dict[str, Applied], target: KubernetesTarget, key: str
) -> None:
    item = applied[key]
    if item.error is not None:
        pytest.fail(f"{key} was not applied: {item.error}")
    assert target.drifted(item.stack) == set()


def test_every_pod_runs_under_the_restricted_pod_security_level(
    applied: dict[str, Applied], cluster: Cluster
) -> None:
    namespaces = [a.stack.namespace for a in applied.values() if a.error is None]
    assert namespaces
    for ns in namespaces:
        labels = cluster.get("Namespace", ns, api_version="v1")["metadata"]["labels"]
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", ns
    pods = [p for ns in namespaces for p in cluster.objects("Pod", ns, api_version="v1")]
    assert pods, "the controllers created no pods"
    assert all(p["status"]["phase"] in ("Running", "Succeeded") for p in pods), [
        (p["metadata"]["namespace"], p["metadata"]["name"], p["status"]["phase"])
        for p in pods
        if p["status"]["phase"] not in ("Running", "Succeeded")
    ]
