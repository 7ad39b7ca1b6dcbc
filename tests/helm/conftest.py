"""Fixtures of the chart tests: the real helm CLI (Helm v4) and the real cluster.

Two kinds of test use them. Rendering tests (test_chart, test_rbac) ask Helm for the
release it *would* install (``helm install --dry-run=client -o json``: manifest, hooks,
chart tests and NOTES, no cluster involved) and judge every object. Cluster tests
(test_cluster_install) install, upgrade, test and uninstall the chart on the real
cluster of tests/cluster, where the apiserver and its admission (Pod Security
"restricted", quotas, RBAC) are the judges.

The helm binary is the one ``make cluster`` builds from helm.sh/helm/v4 into
``.cluster/bin`` (``$CITY_TEST_HELM`` overrides the path). Without it the tests fail with
the reason: they are never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.fixtures import cluster, kube, namespace  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "city-platform"
HELM = Path(os.environ.get("CITY_TEST_HELM", ROOT / ".cluster" / "bin" / "helm"))
RELEASE = "demo"
NAMESPACE = "city-platform"

#: The chart's render scenarios named by the issue (plus one for the optional pieces).
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "postgresql-3-replicas": {
        "database": {"mode": "postgresql", "url": "postgresql+psycopg://cp:pw@db.example:5432/cp"},
        "api": {"replicas": 3},
        "worker": {"replicas": 3},
    },
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": ["platform.example.be"],
            "tls": [{"secretName": "platform-tls", "hosts": ["platform.example.be"]}],
        }
    },
    "postgresql-existing-secret-monitoring": {
        "database": {"mode": "postgresql"},
        "secret": {"existingSecret": "controlplane-credentials"},
        "worker": {"replicas": 0},
        "serviceMonitor": {"enabled": True},
        "image": {"digest": "sha256:" + "a" * 64},
    },
}


class HelmFailedError(Exception):
    """helm exited non-zero; ``message`` is what it wrote to stderr."""

    def __init__(self, args: Sequence[str], message: str) -> None:
        super().__init__(f"helm {' '.join(args)}: {message}")
        self.message = message


def run_helm(
    *args: str,
    values: Mapping[str, Any] | None = None,
    kubeconfig: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the helm CLI; raises HelmFailedError with helm's stderr when it fails."""
    if not HELM.is_file():
        pytest.fail(
            f"the helm CLI is not at {HELM}: `make cluster` builds it (tests/cluster/build.sh)"
        )
    with tempfile.TemporaryDirectory(prefix="helm-") as folder:
        command = [str(HELM), *args]
        if values is not None:
            values_file = Path(folder, "values.yaml")
            values_file.write_text(yaml.safe_dump(dict(values)))
            command += ["--values", str(values_file)]
        if kubeconfig is not None:
            command += ["--kubeconfig", str(kubeconfig)]
        # Helm's caches and repository config stay out of $HOME and out of each other's way.
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(Path(folder, "cache")),
            "HELM_CONFIG_HOME": str(Path(folder, "config")),
            "HELM_DATA_HOME": str(Path(folder, "data")),
        }
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    if done.returncode != 0:
        raise HelmFailedError(args, done.stderr.strip() or done.stdout.strip())
    return done


@dataclass
class Rendered:
    """The release Helm would install: its JSON, and every object (hooks and tests included)."""

    release: dict[str, Any]

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """The release's own objects (what ``helm get manifest`` shows)."""
        return [d for d in yaml.safe_load_all(self.release["manifest"]) if d]

    @property
    def hooks(self) -> list[dict[str, Any]]:
        """Hook objects (migrations, chart tests), which the manifest leaves out."""
        return [
            d
            for hook in self.release.get("hooks") or []
            for d in yaml.safe_load_all(hook["manifest"])
            if d
        ]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [*self.hooks, *self.manifest]

    @property
    def notes(self) -> str:
        return str(self.release["info"].get("notes", ""))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
        return found[0]


def render(values: Mapping[str, Any]) -> Rendered:
    """What ``helm install`` of the chart with ``values`` would send; raises HelmFailedError.

    A client-only dry run: no cluster, so ``lookup`` finds nothing (the Secret then generates
    its server secret) and the cluster's version is Helm's default.
    """
    done = run_helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "--output",
        "json",
        values=values,
    )
    return Rendered(json.loads(done.stdout))


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(request: pytest.FixtureRequest) -> Iterator[Rendered]:
    """The chart rendered once per scenario."""
    return render(SCENARIOS[request.param])
