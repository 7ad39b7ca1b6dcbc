"""Pytest fixtures of the cluster tier: one real cluster per session, a namespace per test.

Import them into a conftest with
``from tests.cluster.fixtures import cluster, kube, namespace  # noqa: F401``.

The cluster is ``$CITY_TEST_KUBECONFIG`` when set (a kind, k3s or managed cluster runs the same
tier), else the local one of ``make cluster`` (``.cluster/kubeconfig``), started here if it is
not running. If it cannot be had, every test of the tier fails with the reason: the tier is
never skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.dynamic
import pytest
from kubernetes.client.exceptions import ApiException

from tests.cluster.local import ClusterError, LocalCluster
from tests.cluster.proxy import FaultProxy


@dataclass
class Cluster:
    """The session's cluster: its kubeconfig, an admin client and a few reading helpers."""

    kubeconfig: Path
    local: LocalCluster | None

    def __post_init__(self) -> None:
        self.api_client = kubernetes.config.new_client_from_config(str(self.kubeconfig))
        self.dynamic = kubernetes.dynamic.DynamicClient(self.api_client)

    def resource(self, kind: str, api_version: str | None = None) -> Any:
        if api_version:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self.dynamic.resources.get(kind=kind)

    def get(
        self, kind: str, name: str, namespace: str | None = None, *, api_version: str | None = None
    ) -> dict[str, Any] | None:
        try:
            obj = self.resource(kind, api_version).get(name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj.to_dict())

    def objects(
        self, kind: str, namespace: str | None = None, *, api_version: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        items = self.resource(kind, api_version).get(namespace=namespace, **kw).items
        return [dict(i.to_dict()) for i in items]

    def namespace_exists(self, name: str) -> bool:
        return self.get("Namespace", name, api_version="v1") is not None

    def wait_for(self, what: str, check: Any, timeout: float = 60, interval: float = 0.2) -> Any:
        """Polls ``check()`` until it returns something truthy; fails the test with ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def local_kubectl_input(self, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        """kubectl (the cluster's own) with ``stdin``, against this cluster; never raises."""
        kubectl = (
            self.local.paths.bin / "kubectl" if self.local else LocalCluster().paths.bin / "kubectl"
        )
        return subprocess.run(
            [str(kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    def kubectl(self, *args: str, check: bool = True) -> Any:
        if self.local is None:
            raise RuntimeError("kubectl is only provided with the local cluster")
        return self.local.kubectl(*args, check=check)


def _start_local() -> LocalCluster:
    local = LocalCluster()
    local.up()  # several xdist workers may get here at once: up() lets one start it
    return local


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    external = os.environ.get("CITY_TEST_KUBECONFIG")
    if external:
        return Cluster(Path(external), None)
    try:
        local = _start_local()
    except ClusterError as exc:
        pytest.fail(f"the cluster tier needs the local cluster, which did not start: {exc}")
    return Cluster(local.paths.kubeconfig, local)


def _namespace_name(node: pytest.Item) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (not awaited) afterwards."""
    name = _namespace_name(request.node)
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    core.create_namespace({"metadata": {"name": name, "labels": {"city-platform.be/test": "true"}}})
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[FaultProxy]:
    """The fault proxy in front of the session's cluster, with its own faults and counters."""
    with FaultProxy(cluster.kubeconfig) as proxy:
        yield proxy
