"""Fixtures of the chart tests: real Helm in a child process, the Kubernetes API emulator.

Rendering needs a cluster: helm-sdkpy has no `helm template` nor client-only dry run, so
the chart is *installed* (memory storage driver, no waiting) into the emulator of
tests/kube_emulator, and the tests read back every object the API server received —
hooks included, which the release manifest leaves out.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "city-platform"
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
    """Helm answered with an error; ``message`` is Helm's text."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


def run_helm(request: Mapping[str, Any]) -> Any:
    """Run one helm-sdkpy action in a child process with the memory storage driver."""
    with tempfile.TemporaryDirectory(prefix="helm-") as folder:
        request_path, result_path = Path(folder, "request.json"), Path(folder, "result.json")
        request_path.write_text(json.dumps(request))
        # Go reads HELM_DRIVER at process start, hence the child process (see helm_runner).
        env = {**os.environ, "HELM_DRIVER": "memory"}
        done = subprocess.run(
            [sys.executable, "-m", "tests.helm.helm_runner", str(request_path), str(result_path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if not result_path.exists():
            raise HelmFailedError("crash", f"exit {done.returncode}: {done.stderr[-2000:]}")
        answer = json.loads(result_path.read_text())
    if not answer["ok"]:
        raise HelmFailedError(answer["error"], answer["message"])
    return answer["result"]


@pytest.fixture(scope="session")
def helm_available() -> str:
    """Helm's version; skips the Helm tests only when helm-sdkpy cannot load."""
    try:
        return str(run_helm({"action": "probe"})["version"])
    except HelmFailedError as exc:
        pytest.skip(f"helm-sdkpy cannot load its Helm library here: {exc}")


def emulator_class() -> Any:
    """The emulator of tests/kube_emulator, or a skip naming why it is not usable."""
    try:
        from tests.kube_emulator import KubeEmulator
    except ImportError as exc:
        pytest.skip(f"the Kubernetes API emulator (tests/kube_emulator) is not available: {exc}")
    return KubeEmulator


@dataclass
class Installed:
    """One install of the chart: Helm's release and what the API server received."""

    release: dict[str, Any]
    #: Every object created through the API, in order (hooks included).
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def manifest(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.release["manifest"]) if d]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.received if o.get("kind") == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
        return found[0]


def install_into(emulator: Any, values: Mapping[str, Any]) -> Installed:
    """Install the chart into ``emulator`` with ``values``; raises HelmFailedError."""
    received: list[dict[str, Any]] = []
    store = emulator.store
    original = store.create

    def recording(kind: Any, namespace: str | None, obj: Mapping[str, Any], manager: str) -> Any:
        received.append(copy.deepcopy(dict(obj)))
        return original(kind, namespace, obj, manager)

    store.create = recording
    if emulator.get("Namespace", NAMESPACE) is None:
        emulator.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    with tempfile.TemporaryDirectory(prefix="kubeconfig-") as folder:
        kubeconfig = emulator.write_kubeconfig(Path(folder, "config"))
        try:
            release = run_helm(
                {
                    "action": "install",
                    "chart": str(CHART),
                    "release": RELEASE,
                    "namespace": NAMESPACE,
                    "kubeconfig": str(kubeconfig),
                    "values": dict(values),
                }
            )
        finally:
            store.create = original
    return Installed(release=release, received=received)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def installed(request: pytest.FixtureRequest, helm_available: str) -> Iterator[Installed]:
    """The chart installed once per scenario into a fresh emulator."""
    with emulator_class()(seed=0) as emulator:
        yield install_into(emulator, SCENARIOS[request.param])
