"""Reconcile benchmarks: the Flemish fleet on GitOps, the no-op resync, and provisioning on
the Kubernetes emulator.

The fleet is every municipality in controlplane/tenants/data/flemish-municipalities.csv (285,
Source: Statbel, CC BY 4.0) x the 8 services of the shipped catalogue = 2,280 instances,
reconciled by one worker on SQLite into a GitOps tree. The no-op figure is a full resync of
that fleet after it converged: it must write nothing (files counted by inode and mtime).
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, SQLModel

import controlplane.tables  # noqa: F401
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.records import PublishedVersion
from controlplane.db.engine import make_engine
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.tenants.models import Tenant
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.benchmarks import Figure

MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV
SECRET = b"bench-server-secret-0123456789abcdef"


def _bench_dir() -> str:
    # Inside the project (like .bench/results.json): /tmp may be a much slower file system,
    # and file creation is what a cold GitOps reconcile mostly does.
    path = Path(".bench")
    path.mkdir(exist_ok=True)
    return str(path)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:20].strip("-")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_ino, st.st_mtime_ns)
    return out


def _fleet(engine_url: str, tree: Path, sealing: Path) -> tuple[Worker, int]:
    engine = make_engine(engine_url)
    SQLModel.metadata.create_all(engine)
    catalog = load_catalog()
    releases = {}
    with Session(engine) as session:
        for release in catalog.releases():
            session.add(
                PublishedVersion(
                    service=release.name,
                    version=release.version.version,
                    release=release.model_dump(mode="json"),
                    digest=release.digest,
                )
            )
            releases[release.name] = release  # the newest wins (sorted by version)
        session.add(
            Target(
                name="local",
                kind=TargetKind.GITOPS,
                config={"path": str(tree), "sealing_cert": str(sealing)},
                is_default=True,
            )
        )
        with MUNICIPALITIES.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        count = 0
        for row in rows:
            tenant = Tenant(
                slug=f"{_slug(row['name_nl'])}-{row['nis_code']}"[:30],
                name=row["name_nl"],
                nis_code=row["nis_code"],
            )
            session.add(tenant)
            session.flush()
            for service, release in sorted(releases.items()):
                name = service[:12]
                instance = Instance(
                    tenant_id=tenant.id,
                    name=name,
                    service=service,
                    version=release.version.version,
                    plan=release.plans[0].name,
                    parameters={},
                    target="local",
                    namespace=f"{tenant.slug}-{name}",
                )
                session.add(instance)
                session.flush()
                queueing.enqueue(session, instance.id, reason="created")
                count += 1
        session.commit()
    reconciler = Reconciler(
        engine, server_secret=SECRET, targets=TargetRegistry(), settings=ReconcileSettings()
    )
    return Worker(engine, reconciler, batch_size=200), count


def _fleet_figures() -> list[Figure]:
    with tempfile.TemporaryDirectory(dir=_bench_dir()) as tmp:
        root = Path(tmp)
        cert = ensure_keypair(root / "sealing", key_size=2048)
        worker, count = _fleet(f"sqlite:///{root / 'cp.db'}", root / "tree", cert)
        start = time.perf_counter()
        worker.run_until_idle(timeout=600)
        cold = time.perf_counter() - start
        failed = worker.counts.get("failed", 0)
        before = _snapshot(root / "tree")
        with Session(worker.engine) as session:
            from sqlalchemy import update

            from controlplane.db.types import utcnow
            from controlplane.provisioning.models import ReconcileRequest

            session.execute(update(ReconcileRequest).values(due_at=utcnow()))
            session.commit()
        start = time.perf_counter()
        worker.run_until_idle(timeout=600)
        noop = time.perf_counter() - start
        after = _snapshot(root / "tree")
        changed = sum(1 for k, v in after.items() if before.get(k) != v) + len(
            set(before) - set(after)
        )
        return [
            Figure(
                "reconcile",
                f"fleet cold reconcile to GitOps ({count} instances)",
                cold,
                "s",
                "< 10 s",
            ),
            Figure("reconcile", "fleet instances failed", float(failed), "count", "0"),
            Figure("reconcile", "fleet files written", float(len(after)), "files"),
            Figure("reconcile", "fleet no-op resync", noop, "s", "< 3 s"),
            Figure("reconcile", "fleet no-op files written", float(changed), "files", "0"),
        ]


def _emulator_figures() -> list[Figure]:
    from controlplane.kube.target import KubeTarget
    from controlplane.provisioning.targets.kubernetes import KubernetesTarget
    from tests.kube_emulator import KubeEmulator

    with tempfile.TemporaryDirectory(dir=_bench_dir()) as tmp, KubeEmulator(seed=0) as emulator:
        root = Path(tmp)
        engine_url = f"sqlite:///{root / 'cp.db'}"
        engine = make_engine(engine_url)
        SQLModel.metadata.create_all(engine)
        catalog = load_catalog()
        with Session(engine) as session:
            releases = {}
            for release in catalog.releases():
                session.add(
                    PublishedVersion(
                        service=release.name,
                        version=release.version.version,
                        release=release.model_dump(mode="json"),
                        digest=release.digest,
                    )
                )
                releases[release.name] = release
            session.add(Target(name="cluster", kind=TargetKind.KUBERNETES, config={}))
            tenant = Tenant(slug="gent", name="Gent", nis_code="44021")
            session.add(tenant)
            session.flush()
            for service, release in sorted(releases.items()):
                instance = Instance(
                    tenant_id=tenant.id,
                    name=service[:12],
                    service=service,
                    version=release.version.version,
                    plan=release.plans[0].name,
                    parameters={},
                    target="cluster",
                    namespace=f"gent-{service[:12]}",
                )
                session.add(instance)
                session.flush()
                queueing.enqueue(session, instance.id)
            session.commit()
        target = KubernetesTarget(KubeTarget(emulator.api_client()), name="cluster")
        reconciler = Reconciler(
            engine,
            server_secret=SECRET,
            targets=TargetRegistry(overrides={"cluster": target}),
            settings=ReconcileSettings(not_ready_seconds=0),
        )
        worker = Worker(engine, reconciler)
        start = time.perf_counter()
        done = worker.run_once()
        applied = time.perf_counter() - start
        writes = emulator.writes.total
        emulator.set_ready(True)
        start = time.perf_counter()
        worker.run_until_idle(timeout=120)
        ready = time.perf_counter() - start
        return [
            Figure(
                "reconcile", "emulator: first apply per stack", applied / max(done, 1) * 1000, "ms"
            ),
            Figure("reconcile", "emulator: writes per stack", writes / max(done, 1), "requests"),
            Figure(
                "reconcile", "emulator: readiness pass per stack", ready / max(done, 1) * 1000, "ms"
            ),
        ]


def run() -> list[Figure]:
    return [*_fleet_figures(), *_emulator_figures()]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name}: {figure.value:.3f} {figure.unit} (target {figure.target})")
