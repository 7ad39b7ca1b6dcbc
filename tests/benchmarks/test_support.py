"""The helpers the benchmark figures rest on: the Helm chart of a rendered stack (real Helm
must apply exactly the given objects) and the fitted scaling exponent."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import helm_sdkpy
import pytest

from tests.benchmarks.bench_scaling import fitted_exponent
from tests.benchmarks.helm_chart import write_chart
from tests.cluster.fixtures import Cluster, cluster, namespace  # noqa: F401

TRICKY = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "labels": {"app": "x"}},
    "data": {"template": "Hallo {{ .Release.Name }} }}{{", "quote": 'it\'s "fine"'},
}


def test_helm_installs_the_objects_verbatim(
    cluster: Cluster,  # noqa: F811
    namespace: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    tricky = {**TRICKY, "metadata": {**TRICKY["metadata"], "namespace": namespace}}
    chart = write_chart(tmp_path, [tricky], name="stack")
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=str(cluster.kubeconfig))
    asyncio.run(helm_sdkpy.Install(config).run("r1", str(chart), wait=False))
    stored = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
    assert stored is not None
    assert stored["data"] == TRICKY["data"]
    assert stored["metadata"]["labels"]["app"] == "x"


@pytest.mark.parametrize("k", [1.0, 1.3, 0.7])
def test_fitted_exponent_recovers_a_power_law(k: float) -> None:
    points = [(n, 0.002 * n**k) for n in (100, 1_000, 10_000)]
    assert math.isclose(fitted_exponent(points), k, rel_tol=1e-9)


def test_fitted_exponent_needs_two_sizes() -> None:
    with pytest.raises(ValueError, match="two different sizes"):
        fitted_exponent([(100, 1.0), (100, 2.0)])
