"""Fixtures of the Kubernetes port tests: the real cluster behind the fault proxy."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from controlplane.kube import KubeClient, RetryPolicy
from tests.cluster.fixtures import Cluster, cluster, kube, namespace  # noqa: F401
from tests.cluster.proxy import FaultProxy

#: Tiny waits so that retry tests stay fast; the jitter is seeded so runs repeat.
FAST_RETRY = RetryPolicy(
    attempts=8, base_delay=0.001, max_delay=0.01, deadline=10.0, request_timeout=10.0,
    poll_interval=0.2, seed=1,
)  # fmt: skip


@pytest.fixture
def target(kube: FaultProxy) -> Iterator[KubeClient]:  # noqa: F811
    """The port through the fault proxy (faults and write counts on ``kube``)."""
    port = KubeClient(kube.api_client(), retry=FAST_RETRY)
    yield port
    port.close()


@pytest.fixture
def fresh_namespace(cluster: Cluster) -> Iterator[Callable[[], str]]:  # noqa: F811
    """Unique names for namespaces a test creates itself (by applying a stack); deleted after."""
    names: list[str] = []

    def make() -> str:
        names.append(f"t-kube-{secrets.token_hex(4)}")
        return names[-1]

    yield make
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    for name in names:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name)
