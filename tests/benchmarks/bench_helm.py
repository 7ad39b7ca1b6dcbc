"""The platform side by side with the helm CLI on the same stack, on the same real apiserver.

The usual alternative to this platform is one Helm release per municipality. This module
puts a number on the difference: the rendered stack of one real catalogue service (Keycloak,
newest version, cheapest plan: 19 objects with the namespace baseline — the smallest stack
of the catalogue) is

- provisioned and then reconciled with unchanged inputs by the platform's real reconciler
  (``Reconciler`` + ``Worker.run_until_idle`` on SQLite, ``KubernetesTarget`` over the
  official client, server-side apply);
- packaged as a Helm chart with exactly those objects as static templates
  (``tests/benchmarks/helm_chart.py``), then ``helm install`` and ``helm upgrade`` with
  unchanged values by the real helm CLI (Helm v4, ``.cluster/bin/helm``, server-side apply);

both against ONE real kube-apiserver (the local cluster of ``make cluster``, started here if
it is not running; ``$CITY_TEST_KUBECONFIG`` names another), in one run, each side through
its own fault proxy (tests/cluster/proxy.py, no faults) that counts the writes it forwards.
Every instance and release gets fresh, uniquely named namespaces, deleted at the end.
Figures are medians over ``REPEATS`` instances/releases after one warm-up round: time per
provision, time per no-op update, writes per provision and per no-op update, and the
platform's apiserver requests of any method (reads and watches too) per provision and per
no-op resync. The platform's port keeps a watch cache (``controlplane.kube.cache``), started by
the warm-up round and synced before the measured rounds (not timed), as a long-running worker
has it. Neither side
waits for readiness (Helm's default ``--wait=hookOnly``; the platform reads readiness once).
Caveats are in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from sqlalchemy import update
from sqlmodel import Session, SQLModel, col

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.publishing import publish_release
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.kube.client import KubeClient
from controlplane.kube.retrying import RetryPolicy
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, ReconcileRequest, Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.worker import Worker
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.tenants.models import Tenant
from tests.benchmarks import Figure
from tests.benchmarks.helm_chart import write_chart
from tests.cluster.local import LocalCluster
from tests.cluster.proxy import FaultProxy

AREA = "helm"
SERVICE = "keycloak"
#: Few: every round leaves two real stacks (pods, claims) on the shared cluster until the end.
REPEATS = 3
SECRET = b"bench-helm-server-secret-0123456789"
ROOT = Path(__file__).resolve().parents[2]
HELM = Path(os.environ.get("CITY_TEST_HELM", ROOT / ".cluster" / "bin" / "helm"))
TARGET = "cluster"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _kubeconfig() -> Path:
    """The cluster to measure: ``$CITY_TEST_KUBECONFIG``, else the local one (started if needed)."""
    external = os.environ.get("CITY_TEST_KUBECONFIG")
    if external:
        return Path(external)
    local = LocalCluster()
    local.up()  # a no-op when it runs
    return local.paths.kubeconfig


class _Platform:
    """A SQLite control plane whose only target is the cluster, through ``proxy``."""

    def __init__(
        self, folder: Path, proxy: FaultProxy, release: ServiceRelease, tenant_slug: str
    ) -> None:
        self.engine = make_engine(f"sqlite:///{folder / 'cp.db'}")
        SQLModel.metadata.create_all(self.engine)
        self.release = release
        self.plan = min(release.plans, key=lambda p: p.monthly_price).name
        with Session(self.engine, expire_on_commit=False) as session:
            publish_release(session, release)
            session.add(Target(name=TARGET, kind=TargetKind.KUBERNETES, config={}))
            self.tenant = Tenant(slug=tenant_slug, name="Gent", nis_code="44021")
            session.add(self.tenant)
            session.commit()
        self.port = KubeClient(proxy.api_client(), retry=RetryPolicy(seed=1))
        port = self.port
        registry = TargetRegistry(overrides={TARGET: KubernetesTarget(port, name=TARGET)})
        settings = ReconcileSettings(resync_seconds=3600, not_ready_seconds=3600)
        reconciler = Reconciler(
            self.engine, server_secret=SECRET, targets=registry, settings=settings
        )
        self.worker = Worker(self.engine, reconciler, fleet=False, poll_seconds=0.01)

    def create(self, name: str) -> str:
        """What the API records for a new instance (not timed: the API's share); its namespace."""
        namespace = f"{self.tenant.slug}-{name}"
        with Session(self.engine, expire_on_commit=False) as session:
            instance = Instance(
                tenant_id=self.tenant.id,
                name=name,
                service=self.release.name,
                version=self.release.version.version,
                plan=self.plan,
                parameters={},
                target=TARGET,
                namespace=namespace,
            )
            session.add(instance)
            session.flush()
            queueing.enqueue(session, instance.id, reason="created")
            session.commit()
        return namespace

    def make_due(self) -> None:
        """Fast-forward to the next resync: the reconcile of unchanged inputs."""
        with Session(self.engine) as session:
            session.execute(
                update(ReconcileRequest)
                .where(col(ReconcileRequest.due_at) > utcnow())
                .values(due_at=utcnow() - timedelta(seconds=1))
            )
            session.commit()

    def reconcile(self) -> int:
        return self.worker.run_until_idle(timeout=60)


class _Helm:
    """The helm CLI, through ``proxy``; its releases are stored in ``namespace``."""

    def __init__(self, folder: Path, proxy: FaultProxy, namespace: str) -> None:
        self.kubeconfig = proxy.write_kubeconfig(folder / "helm-kubeconfig")
        self.namespace = namespace
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(folder / "helm-cache"),
            "HELM_CONFIG_HOME": str(folder / "helm-config"),
            "HELM_DATA_HOME": str(folder / "helm-data"),
        }

    def run(self, *args: str) -> None:
        command = [str(HELM), *args, "--namespace", self.namespace]
        command += ["--kubeconfig", str(self.kubeconfig)]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")


def _timed(proxy: FaultProxy, action: Callable[[], Any]) -> tuple[float, int]:
    proxy.writes.reset()
    proxy.requests.reset()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, proxy.writes.total


def run() -> list[Figure]:
    if not HELM.is_file():
        return [Figure(AREA, f"no helm CLI at {HELM} (make cluster builds it): skipped", 0, "")]
    kubeconfig = _kubeconfig()
    admin = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
    catalog = load_catalog()
    release = catalog.release(SERVICE)
    renderer = Renderer(server_secret=SECRET)
    run_id = secrets.token_hex(3)
    # Unique per run: other engineers' tests and benchmarks share the cluster.
    platform_slug, helm_slug = f"bp{run_id}", f"bh{run_id}"
    helm_storage = f"bench-helm-{run_id}"
    created: list[str] = []
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    with (
        tempfile.TemporaryDirectory(prefix="bench-helm-") as tmp,
        FaultProxy(kubeconfig) as platform_proxy,
        FaultProxy(kubeconfig) as helm_proxy,
    ):
        folder = Path(tmp)
        platform = _Platform(folder, platform_proxy, release, platform_slug)
        admin.create_namespace({"metadata": {"name": helm_storage}})
        created.append(helm_storage)
        helm = _Helm(folder, helm_proxy, helm_storage)
        helm_tenant = TenantRef(slug=helm_slug, name="Helm", nis_code="44021")
        objects = 0
        try:
            # One warm-up round per side (templates, validators, client pools, discovery).
            for rep in range(REPEATS + 1):
                name = f"kc{rep}"
                created.append(platform.create(name))
                provision_s, provision_w = _timed(platform_proxy, platform.reconcile)
                provision_r = platform_proxy.requests.total
                if rep == 0 and not platform.port.wait_synced(timeout=60):
                    raise RuntimeError("the platform's watches did not sync in 60 s")
                platform.make_due()
                noop_s, noop_w = _timed(platform_proxy, platform.reconcile)
                noop_r = platform_proxy.requests.total

                stack = renderer.render(
                    release,
                    plan=platform.plan,
                    tenant=helm_tenant,
                    instance=InstanceRef(name=name, id=str(uuid.uuid5(uuid.NAMESPACE_URL, name))),
                    parameters={},
                )
                objects = len(stack.objects)
                created.append(f"{helm_slug}-{name}")
                chart = str(write_chart(folder / name, stack.objects, name=SERVICE))
                install = ("install", name, chart, "--server-side=true")
                helm_provision_s, helm_provision_w = _timed(helm_proxy, lambda: helm.run(*install))  # noqa: B023
                upgrade = ("upgrade", name, chart)
                helm_noop_s, helm_noop_w = _timed(helm_proxy, lambda: helm.run(*upgrade))  # noqa: B023
                if rep == 0:
                    continue
                add("platform provision", provision_s)
                add("platform provision writes", provision_w)
                add("platform provision requests", provision_r)
                add("platform no-op requests", noop_r)
                add("platform no-op", noop_s)
                add("platform no-op writes", noop_w)
                add("helm provision", helm_provision_s)
                add("helm provision writes", helm_provision_w)
                add("helm no-op", helm_noop_s)
                add("helm no-op writes", helm_noop_w)
        finally:
            platform.port.close()
            platform.engine.dispose()
            for namespace in created:  # not awaited: the namespace controller finishes
                with contextlib.suppress(ApiException):
                    admin.delete_namespace(namespace)

    m = {key: _median(values) for key, values in samples.items()}
    ratio_provision = m["helm provision"] / m["platform provision"]
    ratio_noop = m["helm no-op"] / m["platform no-op"]
    label = f"{release.name} {release.version.version}, {objects} objects"
    return [
        Figure(AREA, f"stack: {label} (median of {REPEATS})", objects, "objects"),
        Figure(AREA, "platform: provision (first reconcile)", m["platform provision"] * 1000, "ms"),
        Figure(
            AREA, "platform: requests per provision", m["platform provision requests"], "requests"
        ),
        Figure(AREA, "helm: provision (helm install)", m["helm provision"] * 1000, "ms"),
        Figure(AREA, "platform: writes per provision", m["platform provision writes"], "writes"),
        Figure(AREA, "helm: writes per provision", m["helm provision writes"], "writes"),
        Figure(AREA, "platform: no-op update (resync)", m["platform no-op"] * 1000, "ms"),
        Figure(AREA, "helm: no-op update (helm upgrade)", m["helm no-op"] * 1000, "ms"),
        Figure(
            AREA, "platform: writes per no-op update", m["platform no-op writes"], "writes", "0"
        ),
        Figure(AREA, "helm: writes per no-op update", m["helm no-op writes"], "writes"),
        Figure(
            AREA,
            "platform: requests per no-op resync (all methods)",
            m["platform no-op requests"],
            "requests",
            "<= 2",
        ),
        Figure(AREA, "helm/platform provision time ratio", ratio_provision, "x", ">= 3"),
        Figure(AREA, "helm/platform no-op update time ratio", ratio_noop, "x", ">= 10"),
        Figure(
            AREA,
            "helm-platform writes per no-op update",
            m["helm no-op writes"] - m["platform no-op writes"],
            "writes",
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:55} {figure.value:12.3f} {figure.unit}")
