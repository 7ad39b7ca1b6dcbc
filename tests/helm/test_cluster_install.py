"""The chart's whole life on the real cluster with the real helm CLI.

install --wait, upgrade --wait, `helm test`, uninstall --wait, into a namespace that
enforces Pod Security "restricted" (and warns on pod templates, so a Deployment whose
pods would be refused is caught at install, not when it scales). The pods are kwok's:
scheduled, Running and Ready without running the image, and Job pods complete, so the
migration hook and the chart test finish as they would with a reachable database.

Helm talks to the apiserver through the fault proxy (no faults), whose write log gives the
order in which the objects reached the apiserver.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from tests.cluster.fixtures import Cluster
from tests.cluster.proxy import FaultProxy
from tests.helm.conftest import CHART, run_helm

pytestmark = pytest.mark.slow

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}
#: Namespaced kinds the chart renders (hooks and tests included) or whose objects it causes.
NAMESPACED = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "Job"),
]
CLUSTER_SCOPED = [
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
]
TIMEOUT = "180s"


@pytest.fixture
def restricted(cluster: Cluster, namespace: str) -> str:
    """The test's namespace, enforcing Pod Security "restricted"."""
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    return namespace


def _release_objects(cluster: Cluster, release: str, namespace: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    found = []
    for api_version, kind in NAMESPACED:
        for obj in cluster.objects(
            kind, namespace, api_version=api_version, label_selector=selector
        ):
            found.append(f"{kind}/{obj['metadata']['name']}")
    for api_version, kind in CLUSTER_SCOPED:
        for obj in cluster.objects(kind, api_version=api_version, label_selector=selector):
            found.append(f"{kind}/{obj['metadata']['name']}")
    return sorted(found)


def _release_records(cluster: Cluster, release: str, namespace: str) -> list[str]:
    """Helm's own storage: one Secret per revision, labelled owner=helm, name=<release>."""
    records = cluster.objects(
        "Secret", namespace, api_version="v1", label_selector=f"owner=helm,name={release}"
    )
    return [s["metadata"]["name"] for s in records]


def _ready(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    deployment = cluster.get("Deployment", name, namespace, api_version="apps/v1")
    assert deployment is not None, f"Deployment {name} is missing"
    status = deployment["status"] or {}
    return (
        deployment["spec"]["replicas"] == replicas
        and status.get("readyReplicas") == replicas
        and status.get("updatedReplicas") == replicas
    )


def _first_write(writes: list[tuple[str, str, str | None]], path_part: str) -> int:
    return next(i for i, (_method, path, _kind) in enumerate(writes) if path_part in path)


def _no_pod_security_warnings(stderr: str) -> None:
    assert "PodSecurity" not in stderr, stderr


def _helm(
    kube: FaultProxy, tmp_path: Path, *args: str, values: dict[str, Any] | None = None
) -> Any:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    return run_helm(*args, values=values, kubeconfig=kubeconfig)


def test_postgresql_release_installs_upgrades_tests_and_uninstalls(
    cluster: Cluster, kube: FaultProxy, restricted: str, tmp_path: Path
) -> None:
    namespace = restricted
    release = f"cp-{secrets.token_hex(3)}"
    credentials = f"{release}-credentials"
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    # Nothing connects to it: kwok's pods never run the image.
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": credentials},
            "data": {
                "database-url": base64.b64encode(
                    b"postgresql+psycopg://cp:pw@postgres.invalid:5432/cp"
                ).decode(),
                "server-secret": base64.b64encode(secrets.token_bytes(32)).decode(),
            },
        },
    )
    values: dict[str, Any] = {
        "database": {"mode": "postgresql"},
        "secret": {"existingSecret": credentials},
        "api": {"replicas": 1},
        "worker": {"replicas": 1},
    }
    ns = ["--namespace", namespace]

    # install: the migration hook first, then the release, every pod admitted and Ready.
    done = _helm(
        kube,
        tmp_path,
        "install",
        release,
        str(CHART),
        *ns,
        "--wait",
        "--timeout",
        TIMEOUT,
        values=values,
    )
    _no_pod_security_warnings(done.stderr)
    writes = list(kube.writes.log)
    assert _first_write(writes, f"/jobs/{release}-migrations") < _first_write(
        writes, "/deployments/"
    )
    assert _ready(cluster, namespace, f"{release}-api", 1)
    assert _ready(cluster, namespace, f"{release}-worker", 1)
    pods = cluster.objects(
        "Pod", namespace, api_version="v1", label_selector=f"app.kubernetes.io/instance={release}"
    )
    assert {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods} >= {
        "api",
        "worker",
    }
    # hook-succeeded: the completed migration Job is gone.
    assert cluster.get("Job", f"{release}-migrations", namespace, api_version="batch/v1") is None
    role = cluster.get(
        "ClusterRole", f"{release}-{namespace}-worker", api_version="rbac.authorization.k8s.io/v1"
    )
    assert role is not None
    assert role["rules"]

    # upgrade: more API replicas, migrations again, the new pods admitted too.
    kube.writes.reset()
    values["api"]["replicas"] = 2
    done = _helm(
        kube,
        tmp_path,
        "upgrade",
        release,
        str(CHART),
        *ns,
        "--wait",
        "--timeout",
        TIMEOUT,
        values=values,
    )
    _no_pod_security_warnings(done.stderr)
    assert any(f"/jobs/{release}-migrations" in path for _m, path, _k in kube.writes.log)
    assert _ready(cluster, namespace, f"{release}-api", 2)
    assert len(_release_records(cluster, release, namespace)) == 2

    # helm test: the chart's test Job completes, and a passed test leaves nothing behind.
    done = _helm(kube, tmp_path, "test", release, *ns, "--timeout", TIMEOUT)
    assert f"{release}-test-api" in done.stdout
    assert "Succeeded" in done.stdout
    assert cluster.get("Job", f"{release}-test-api", namespace, api_version="batch/v1") is None

    # uninstall: nothing of the release is left (the credentials Secret is ours, not the chart's).
    _helm(kube, tmp_path, "uninstall", release, *ns, "--wait", "--timeout", TIMEOUT)
    cluster.wait_for(
        "the release's objects to be gone",
        lambda: _release_objects(cluster, release, namespace) == [],
    )
    assert _release_records(cluster, release, namespace) == []
    assert core.read_namespaced_secret(credentials, namespace) is not None


def test_sqlite_release_keeps_its_data_and_server_secret_on_uninstall(
    cluster: Cluster, kube: FaultProxy, restricted: str, tmp_path: Path
) -> None:
    namespace = restricted
    release = f"cp-{secrets.token_hex(3)}"
    ns = ["--namespace", namespace]

    done = _helm(
        kube,
        tmp_path,
        "install",
        release,
        str(CHART),
        *ns,
        "--wait",
        "--timeout",
        TIMEOUT,
        values={},
    )
    _no_pod_security_warnings(done.stderr)
    assert _ready(cluster, namespace, f"{release}-api", 1)
    claim = cluster.get("PersistentVolumeClaim", f"{release}-data", namespace, api_version="v1")
    assert claim is not None
    assert claim["status"]["phase"] == "Bound"
    secret = cluster.get("Secret", release, namespace, api_version="v1")
    assert secret is not None
    server_secret = secret["data"]["server-secret"]

    # upgrade with a changed setting: the pod rolls (Recreate) and the generated server
    # secret survives (the chart looks it up instead of generating a new one).
    values = {"controlplane": {"extraSettings": {"CONTROLPLANE_LOG_LEVEL": "debug"}}}
    done = _helm(
        kube,
        tmp_path,
        "upgrade",
        release,
        str(CHART),
        *ns,
        "--wait",
        "--timeout",
        TIMEOUT,
        values=values,
    )
    _no_pod_security_warnings(done.stderr)
    assert _ready(cluster, namespace, f"{release}-api", 1)
    configmap = cluster.get("ConfigMap", release, namespace, api_version="v1")
    assert configmap is not None
    assert configmap["data"]["CONTROLPLANE_LOG_LEVEL"] == "debug"
    secret = cluster.get("Secret", release, namespace, api_version="v1")
    assert secret is not None
    assert secret["data"]["server-secret"] == server_secret

    done = _helm(kube, tmp_path, "test", release, *ns, "--timeout", TIMEOUT)
    assert "Succeeded" in done.stdout

    # helm.sh/resource-policy: keep on the claim (the SQLite database) and the Secret (the
    # server secret every tenant credential derives from): only they outlive the release.
    _helm(kube, tmp_path, "uninstall", release, *ns, "--wait", "--timeout", TIMEOUT)
    cluster.wait_for(
        "only the kept objects to remain",
        lambda: (
            _release_objects(cluster, release, namespace)
            == sorted([f"PersistentVolumeClaim/{release}-data", f"Secret/{release}"])
        ),
    )
    assert _release_records(cluster, release, namespace) == []
