"""The instance lifecycle through the HTTP API and the worker the app's lifespan runs.

The real app (``create_app``) with ``embedded_worker`` on, exactly as ``controlplane serve``
builds it, on a fresh data directory: its start-up creates the default GitOps target and the
embedded worker seals it. Each test walks create → Ready → change parameters and plan →
upgrade along the upgrade range (an object dropped in 2.0.0 is pruned) → roll back to
revision 1 (the object comes back) → delete → gone, on the GitOps target and on the real
cluster (a ``kubernetes`` target created through the API with a kubeconfig that points at
the fault proxy in front of it, which counts the writes). The tenant slug has a random
suffix: the cluster is shared.

The worker's poll tick is set to a minute: every step only converges quickly because the
API wakes the worker after recording the change (a missing wake-up makes these tests time
out). The service is the tiny fixture release of ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane import migrations
from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.provisioning.models import ReconcileRequest
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.rendering.secrets import derive_secret
from controlplane.settings import Settings
from tests.cluster.fixtures import Cluster, cluster, kube  # noqa: F401
from tests.cluster.proxy import FaultProxy
from tests.factories import make_tenant, make_token
from tests.provisioning.conftest import SERVICE, publish, tiny_release

TENANT = f"gent-{secrets.token_hex(2)}"
BASE = f"/api/v1/tenants/{TENANT}/instances"
TIMEOUT = 20.0
SECRET = b"lifecycle-secret"


@dataclass
class Api:
    client: TestClient
    engine: Engine
    data_dir: Path
    headers: dict[str, str]

    @property
    def worker(self) -> Worker:
        worker = self.client.app.state.worker  # type: ignore[attr-defined]
        assert isinstance(worker, Worker)
        return worker

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        response = self.client.request(method, path, headers=self.headers, **kw)
        assert response.status_code == expect, (method, path, response.text)
        return response.json() if response.content else None

    def instance(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"{BASE}/{name}", 200)
        return result

    def wait_ready(self, name: str, generation: int) -> dict[str, Any]:
        """The instance once its status reports ``generation`` applied and Ready."""
        return self.wait(
            lambda: self._observed(name, generation),
            f"{name} Ready at generation {generation}",
        )

    def _observed(self, name: str, generation: int) -> dict[str, Any] | None:
        body = self.instance(name)
        status = body["status"]
        settles = body["settles_at"]  # Committed on a GitOps target that does not observe
        if status["observedGeneration"] == generation and status["phase"] in (settles, "Failed"):
            assert status["phase"] == settles, status
            return body
        return None

    def wait(self, probe: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(0.02)
        pytest.fail(f"timed out waiting for {what}")

    def resync_now(self) -> None:
        """Make the periodic resync due now and wait until the worker has done it."""
        before = sum(self.worker.counts.values())
        with Session(self.engine) as session:
            for request in session.exec(select(ReconcileRequest)).all():
                request.due_at = utcnow() - timedelta(seconds=1)
                session.add(request)
            session.commit()
        self.worker.notify()
        self.wait(lambda: sum(self.worker.counts.values()) > before, "the resync")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    data_dir = tmp_path / "data"
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    migrations.upgrade(engine)
    # A fresh data directory; only the sealing key is made up front, smaller than the
    # embedded default's 4096 bits, to keep the test fast (the worker reuses it).
    ensure_keypair(data_dir.resolve() / "sealing", key_size=2048)
    with Session(engine) as session:
        publish(session, tiny_release("1.0.0"))
        publish(session, tiny_release("2.0.0"))
        make_tenant(session, TENANT, name="Gent", nis_code="44021")
        token = make_token(session, Role.OPERATOR)
        session.commit()
    settings = Settings(
        data_dir=data_dir,
        server_secret=SECRET.decode(),  # type: ignore[arg-type]
        embedded_worker=True,
        worker_poll_seconds=60,
    )
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        yield Api(client, engine, data_dir, {"Authorization": f"Bearer {token}"})
        worker = app.state.worker
    assert not worker.running, "the lifespan's shutdown stops the embedded worker"
    engine.dispose()


def _walk(
    api: Api,
    *,
    target: str | None,
    names: Callable[[], set[str]],
    greeting: Callable[[], str | None],
    writes: Callable[[], int],
    reset_writes: Callable[[], None],
    gone: Callable[[], bool],
) -> None:
    """The lifecycle; the callables observe the target (ConfigMap names, the greeting, …)."""
    body: dict[str, Any] = {
        "name": "forms",
        "service": SERVICE,
        "version": "1.0.0",
        "plan": "small",
    }
    if target:
        body["target"] = target
    created = api.call("POST", BASE, 202, json=body)
    assert created["generation"] == 1

    ready = api.wait_ready("forms", 1)
    conditions = {c["type"]: c for c in ready["status"]["conditions"]}
    assert {k: conditions[k]["status"] for k in ("Rendered", "Applied", "Ready")} == {
        "Rendered": "True",
        "Applied": "True",
        "Ready": "True" if ready["settles_at"] == "Ready" else "False",
    }
    assert all(c["observedGeneration"] == 1 for c in conditions.values())
    assert ready["status"]["currentRevision"] == 1
    assert names() == {"settings", "legacy"}
    assert greeting() == "hallo"

    # A resync of an unchanged instance writes nothing and records no revision.
    reset_writes()
    api.resync_now()
    assert writes() == 0
    assert len(api.call("GET", f"{BASE}/forms/revisions", 200)["items"]) == 1

    # Change parameters, then the plan: each a new generation, applied and Ready.
    changed = api.call("PATCH", f"{BASE}/forms", 202, json={"parameters": {"greeting": "dag"}})
    assert changed["generation"] == 2
    api.wait_ready("forms", 2)
    assert greeting() == "dag"
    api.call("PATCH", f"{BASE}/forms", 202, json={"plan": "large"})
    assert api.wait_ready("forms", 3)["plan"] == "large"

    # Upgrade along the upgrade range: 2.0.0 drops the legacy ConfigMap, which is pruned.
    api.call("PATCH", f"{BASE}/forms", 202, json={"version": "2.0.0"})
    upgraded = api.wait_ready("forms", 4)
    assert upgraded["version"] == "2.0.0"
    assert upgraded["status"]["currentRevision"] == 4
    assert names() == {"settings"}

    # Roll back to revision 1: its version, plan and parameters, and the legacy object.
    api.call("POST", f"{BASE}/forms/rollback", 202, json={"revision": 1})
    rolled = api.wait_ready("forms", 5)
    assert (rolled["version"], rolled["plan"], rolled["parameters"]) == ("1.0.0", "small", {})
    assert names() == {"settings", "legacy"}
    assert greeting() == "hallo"
    revisions = api.call("GET", f"{BASE}/forms/revisions", 200)["items"]
    assert [r["number"] for r in revisions] == [5, 4, 3, 2, 1]
    assert revisions[0]["rollback_of"] == 1
    assert [r["generation"] for r in revisions] == [5, 4, 3, 2, 1]

    # Delete retains the data (issue 18): the workloads go, the instance stays Retained.
    deleted = api.call("DELETE", f"{BASE}/forms", 202)
    api.wait(
        lambda: (
            api.call("GET", f"{BASE}/forms", 200)["status"].get("observedGeneration")
            == deleted["generation"]
        ),
        "the instance to be retained",
        timeout=120,
    )
    assert api.call("GET", f"{BASE}/forms", 200)["status"]["phase"] == "Retained"
    # Purge: the stack is gone from the target and the instance from the API.
    api.call("DELETE", f"{BASE}/forms?purge=true", 202)
    api.wait(
        lambda: api.client.get(f"{BASE}/forms", headers=api.headers).status_code == 404,
        "the instance to be deleted",
        # The namespace controller removes a namespace's objects first: that takes longer
        # than a reconcile, and the reconciler checks back on it.
        timeout=120,
    )
    assert gone()


def test_lifecycle_on_the_embedded_gitops_target(api: Api) -> None:
    tree = api.data_dir / "gitops"
    folder = tree / TENANT / "forms"

    def names() -> set[str]:
        files = [p.name for p in folder.glob("*-configmap-*.yaml")]
        return {name.split("-configmap-", 1)[1].removesuffix(".yaml") for name in files}

    def greeting() -> str | None:
        for path in folder.glob("*-configmap-settings.yaml"):
            for line in path.read_text().splitlines():
                if line.strip().startswith("greeting:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
        return None

    snapshot: dict[Path, tuple[int, int]] = {}

    def reset_writes() -> None:
        snapshot.clear()
        snapshot.update({p: _stamp(p) for p in folder.iterdir()})

    def writes() -> int:
        now = {p: _stamp(p) for p in folder.iterdir()}
        return sum(1 for p in now.keys() | snapshot.keys() if now.get(p) != snapshot.get(p))

    _walk(
        api,
        target=None,  # the default placement: the `local` target the start-up created
        names=names,
        greeting=greeting,
        writes=writes,
        reset_writes=reset_writes,
        gone=lambda: not folder.exists(),
    )
    assert not (tree / TENANT).exists()  # the empty tenant folder went too


def test_secrets_are_sealed_in_the_embedded_gitops_tree(api: Api) -> None:
    created = api.call(
        "POST", BASE, 202, json={"name": "forms", "service": SERVICE, "plan": "small"}
    )
    api.wait_ready("forms", 1)
    folder = api.data_dir / "gitops" / TENANT / "forms"
    secret_file = next(folder.glob("*-secret-credentials.yaml"))
    assert "\nkind: SealedSecret\n" in secret_file.read_text()
    password = derive_secret(SECRET, created["id"], "db_password")
    assert not [p for p in folder.iterdir() if password in p.read_text()]


def test_lifecycle_on_the_cluster(
    api: Api,
    tmp_path: Path,
    kube: FaultProxy,  # noqa: F811
    cluster: Cluster,  # noqa: F811
) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    api.call(
        "POST",
        "/api/v1/targets",
        201,
        json={
            "name": "cluster",
            "config": {"kind": "kubernetes", "kubeconfig": str(kubeconfig), "context": "proxy"},
        },
    )
    api.call("POST", f"/api/v1/targets/cluster/tenants/{TENANT}", 201)  # targets are granted
    namespace = f"{TENANT}--forms"

    def names() -> set[str]:
        found = cluster.objects("ConfigMap", namespace, api_version="v1")
        return {o["metadata"]["name"] for o in found} - {"kube-root-ca.crt"}

    def greeting() -> str | None:
        found = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
        return None if found is None else str(found["data"]["greeting"])

    try:
        _walk(
            api,
            target="cluster",
            names=names,
            greeting=greeting,
            writes=lambda: kube.writes.total,
            reset_writes=kube.writes.reset,
            gone=lambda: not cluster.namespace_exists(namespace),
        )
    finally:
        with contextlib.suppress(kubernetes.client.ApiException):
            kubernetes.client.CoreV1Api(cluster.api_client).delete_namespace(namespace)
    assert not (api.data_dir / "gitops" / TENANT).exists()


def _stamp(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns
