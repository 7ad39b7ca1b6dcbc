"""Real Helm (helm-sdkpy, the Helm v4 Go library) installs into the real cluster.

The chart tests of the control plane and the benchmarks drive Helm through helm-sdkpy; this
pins that it works on the cluster tier: release Secrets, SSA and client-side creates, and the
wait for the Deployment the real controllers roll out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import helm_sdkpy  # a dev dependency: never skipped
import pytest

from tests.cluster.fixtures import Cluster

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "templates/config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    ),
    "templates/web.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
        "spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n"
        "        - name: web\n          image: nginx:1.27\n"
    ),
    "values.yaml": "greeting: hello\n",
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    for name, text in CHART.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("server_side", [True, False], ids=["ssa", "client-side"])
def test_helm_install_with_wait_reaches_deployed(
    cluster: Cluster, namespace: str, chart: Path, server_side: bool
) -> None:
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=str(cluster.kubeconfig))

    release = asyncio.run(
        helm_sdkpy.Install(config).run(
            "demo",
            str(chart),
            values={"greeting": "hallo"},
            wait=True,
            timeout=30,
            server_side_apply=server_side,
        )
    )

    assert release["info"]["status"] == "deployed"
    config_map = cluster.get("ConfigMap", "demo-config", namespace, api_version="v1")
    assert config_map is not None
    assert config_map["data"] == {"greeting": "hallo"}
    web = cluster.get("Deployment", "demo-web", namespace, api_version="apps/v1")
    assert web is not None
    assert web["status"]["availableReplicas"] == 1  # what the wait waited for
    secrets = cluster.objects("Secret", namespace, api_version="v1")
    assert [s["metadata"]["labels"]["owner"] for s in secrets] == ["helm"]
    assert secrets[0]["metadata"]["labels"]["status"] == "deployed"
