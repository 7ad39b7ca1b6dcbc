"""The platform side by side with Helm v4 on the same stack, against the same emulator.

The usual alternative to this platform is one Helm release per municipality. This module
puts a number on the difference: the rendered stack of one real catalogue service (Keycloak,
newest version, cheapest plan: 19 objects with the namespace baseline — the smallest stack
of the catalogue, so the closest to the "13-object stack" of the issue) is

- provisioned and then reconciled with unchanged inputs by the platform's real reconciler
  (``Reconciler`` + ``Worker.run_until_idle`` on SQLite, ``KubernetesTarget`` over the
  official client);
- packaged as a Helm chart with exactly those objects as static templates
  (``tests/benchmarks/helm_chart.py``), then ``helm install`` and ``helm upgrade`` with
  unchanged values through helm-sdkpy (the Helm v4 Go library, server-side apply);

both against ONE ``KubeEmulator`` on loopback. Figures are medians over ``REPEATS`` fresh
instances/releases: time per provision, time per no-op update, and writes per no-op update
as counted by the emulator (every POST/PUT/PATCH/DELETE it receives). Neither side waits for
readiness (Helm ``wait=False``; the platform reads readiness once and does not wait).
Caveats are in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, SQLModel, col

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.publishing import publish_release
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.kube.retrying import RetryPolicy
from controlplane.kube.target import KubeTarget
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
from tests.kube_emulator import KubeEmulator

AREA = "helm"
SERVICE = "keycloak"
REPEATS = 7
SECRET = b"bench-helm-server-secret-0123456789"
#: Where Helm keeps its release Secrets (one namespace for every release, created up front).
HELM_NAMESPACE = "helm-releases"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


class _Platform:
    """A SQLite control plane whose only target is the emulator."""

    def __init__(self, folder: Path, emulator: KubeEmulator, release: ServiceRelease) -> None:
        self.engine = make_engine(f"sqlite:///{folder / 'cp.db'}")
        SQLModel.metadata.create_all(self.engine)
        self.release = release
        self.plan = min(release.plans, key=lambda p: p.monthly_price).name
        with Session(self.engine, expire_on_commit=False) as session:
            publish_release(session, release)
            session.add(Target(name="emulator", kind=TargetKind.KUBERNETES, config={}))
            self.tenant = Tenant(slug="gent", name="Gent", nis_code="44021")
            session.add(self.tenant)
            session.commit()
        port = KubeTarget(emulator.api_client(), retry=RetryPolicy(seed=1))
        registry = TargetRegistry(overrides={"emulator": KubernetesTarget(port, name="emulator")})
        settings = ReconcileSettings(resync_seconds=3600, not_ready_seconds=3600)
        reconciler = Reconciler(
            self.engine, server_secret=SECRET, targets=registry, settings=settings
        )
        self.worker = Worker(self.engine, reconciler, fleet=False, poll_seconds=0.01)

    def create(self, name: str) -> uuid.UUID:
        """What the API records for a new instance (not timed: the API's share)."""
        with Session(self.engine, expire_on_commit=False) as session:
            instance = Instance(
                tenant_id=self.tenant.id,
                name=name,
                service=self.release.name,
                version=self.release.version.version,
                plan=self.plan,
                parameters={},
                target="emulator",
                namespace=f"{self.tenant.slug}-{name}",
            )
            session.add(instance)
            session.flush()
            queueing.enqueue(session, instance.id, reason="created")
            session.commit()
            return instance.id

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


def _timed(emulator: KubeEmulator, action: Callable[[], Any]) -> tuple[float, int]:
    emulator.writes.reset()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, emulator.writes.total


def run() -> list[Figure]:
    try:
        import helm_sdkpy
    except ImportError:  # helm-sdkpy needs Python >= 3.12 and its bundled Go library
        return [Figure(AREA, "helm-sdkpy not installed: comparison skipped", 0, "")]

    catalog = load_catalog()
    release = catalog.release(SERVICE)
    renderer = Renderer(server_secret=SECRET)
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="bench-helm-") as tmp, KubeEmulator(seed=0) as emu:
        folder = Path(tmp)
        platform = _Platform(folder, emu, release)
        emu.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HELM_NAMESPACE}})
        kubeconfig = emu.write_kubeconfig(folder / "kubeconfig")
        config = helm_sdkpy.Configuration(namespace=HELM_NAMESPACE, kubeconfig=str(kubeconfig))
        helm_tenant = TenantRef(slug="helm", name="Helm", nis_code="44021")
        objects = 0
        # One warm-up round per side (templates, validators, client pools, the Go runtime).
        for rep in range(REPEATS + 1):
            name = f"kc{rep}"
            platform.create(name)
            provision_s, provision_w = _timed(emu, platform.reconcile)
            platform.make_due()
            noop_s, noop_w = _timed(emu, platform.reconcile)

            stack = renderer.render(
                release,
                plan=platform.plan,
                tenant=helm_tenant,
                instance=InstanceRef(name=name, id=str(uuid.uuid5(uuid.NAMESPACE_URL, name))),
                parameters={},
            )
            objects = len(stack.objects)
            chart = write_chart(folder / name, stack.objects, name=SERVICE)
            install = helm_sdkpy.Install(config)
            upgrade = helm_sdkpy.Upgrade(config)

            def helm_install(release: str = name, path: str = str(chart)) -> Any:
                job = install.run(release, path, wait=False, server_side_apply=True)  # noqa: B023
                return loop.run_until_complete(job)

            def helm_upgrade(release: str = name, path: str = str(chart)) -> Any:
                return loop.run_until_complete(upgrade.run(release, path, wait=False))  # noqa: B023

            helm_provision_s, helm_provision_w = _timed(emu, helm_install)
            helm_noop_s, helm_noop_w = _timed(emu, helm_upgrade)
            if rep == 0:
                continue
            add("platform provision", provision_s)
            add("platform provision writes", provision_w)
            add("platform no-op", noop_s)
            add("platform no-op writes", noop_w)
            add("helm provision", helm_provision_s)
            add("helm provision writes", helm_provision_w)
            add("helm no-op", helm_noop_s)
            add("helm no-op writes", helm_noop_w)
        platform.engine.dispose()
    loop.close()

    m = {key: _median(values) for key, values in samples.items()}
    ratio_provision = m["helm provision"] / m["platform provision"]
    ratio_noop = m["helm no-op"] / m["platform no-op"]
    label = f"{release.name} {release.version.version}, {objects} objects"
    return [
        Figure(AREA, f"stack: {label} (median of {REPEATS})", objects, "objects"),
        Figure(AREA, "platform: provision (first reconcile)", m["platform provision"] * 1000, "ms"),
        Figure(AREA, "helm: provision (helm install)", m["helm provision"] * 1000, "ms"),
        Figure(AREA, "platform: writes per provision", m["platform provision writes"], "writes"),
        Figure(AREA, "helm: writes per provision", m["helm provision writes"], "writes"),
        Figure(AREA, "platform: no-op update (resync)", m["platform no-op"] * 1000, "ms"),
        Figure(AREA, "helm: no-op update (helm upgrade)", m["helm no-op"] * 1000, "ms"),
        Figure(
            AREA, "platform: writes per no-op update", m["platform no-op writes"], "writes", "0"
        ),
        Figure(AREA, "helm: writes per no-op update", m["helm no-op writes"], "writes"),
        Figure(AREA, "helm/platform provision time ratio", ratio_provision, "x"),
        Figure(AREA, "helm/platform no-op update time ratio", ratio_noop, "x"),
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
