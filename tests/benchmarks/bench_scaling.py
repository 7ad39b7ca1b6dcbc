"""The scaling curve: a cold fleet reconcile at 100, 1,000 and 10,000 instances.

Does the reconciler stay linear as the fleet grows (no per-instance cost that grows with
the fleet: queue scans, inventory lookups, directory walks)? Each size runs in its own
process (``python -m tests.benchmarks.bench_scaling --one N``) so that its peak resident
memory (``VmHWM``) belongs to that size alone. A size = the 285 Flemish municipalities
(Source: Statbel, CC BY 4.0) round-robin x the 8 catalogue services at their newest version
on the cheapest plan, reconciled by one worker on SQLite into a GitOps directory with sealed
secrets — the embedded default, through the real ``Reconciler`` and ``Worker``.

Figures: seconds and peak RSS per size, milliseconds per instance, and the exponent ``k``
of ``time ∝ nᵏ`` fitted by least squares on log(time) against log(n) (goal: ≤ 1.1).
``SCALING_SIZES=100,1000`` overrides the sizes (quick runs).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, SQLModel

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import publish_release
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.provisioning.models import Instance, ReconcileRequest, Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.settings import Settings
from controlplane.tenants.models import Tenant
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.benchmarks import Figure

AREA = "scaling"
SIZES = (100, 1_000, 10_000)
#: Issue 17: linear or better (a fleet twice as large costs at most twice the time).
GOAL = "<= 1.0"
SECRET = b"bench-scaling-server-secret-0123456789"
MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV


def _municipalities() -> list[tuple[str, str, str]]:
    """(slug, name, NIS code) per municipality; synthetic ones when the CSV is absent."""
    if not MUNICIPALITIES.is_file():
        return [(f"gemeente-{i}", f"Gemeente {i}", f"{10000 + i}") for i in range(285)]
    with MUNICIPALITIES.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        slug = re.sub(r"[^a-z0-9]+", "-", row["name_nl"].lower()).strip("-")[:24].strip("-")
        out.append((f"{slug}-{row['nis_code']}", row["name_nl"], row["nis_code"]))
    return out


def _load_fleet(root: Path, size: int) -> Worker:
    """A fresh SQLite control plane with ``size`` instances queued (not timed)."""
    engine = make_engine(f"sqlite:///{root / 'cp.db'}")
    SQLModel.metadata.create_all(engine)
    catalog = load_catalog()
    cert = ensure_keypair(root / "sealing", key_size=2048)
    newest = [catalog.release(name) for name in sorted(catalog.services)]
    now = utcnow()
    with Session(engine) as session:
        for release in catalog.releases():
            publish_release(session, release)
        session.add(
            Target(
                name="local",
                kind=TargetKind.GITOPS,
                config={"path": str(root / "tree"), "sealing_cert": str(cert)},
                is_default=True,
            )
        )
        tenants = [Tenant(slug=s, name=n, nis_code=c) for s, n, c in _municipalities()]
        session.add_all(tenants)
        session.flush()
        for i in range(size):
            tenant = tenants[i % len(tenants)]
            release = newest[i % len(newest)]
            name = f"{release.name[:10].strip('-')}-{i}"
            instance = Instance(
                tenant_id=tenant.id,
                name=name,
                service=release.name,
                version=release.version.version,
                plan=min(release.plans, key=lambda p: p.monthly_price).name,
                parameters={},
                target="local",
                namespace=f"{tenant.slug}-{name}",
            )
            session.add(instance)
            session.flush()
            session.add(ReconcileRequest(instance_id=instance.id, due_at=now, reason="created"))
        session.commit()
    reconciler = Reconciler(
        engine, server_secret=SECRET, targets=TargetRegistry(), settings=ReconcileSettings()
    )
    # As the embedded default: ``Settings.resolved_render_processes()`` (one per CPU).
    return Worker(
        engine,
        reconciler,
        batch_size=200,
        fleet=False,
        render_processes=Settings().resolved_render_processes(),
    )


def scratch_dir() -> str | None:
    """tmpfs when the machine has one: the curve measures the platform, not a shared disk
    (on these VMs one file create costs ~1 ms, which would hide the reconciler entirely)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _peak_rss_kib() -> float:
    """This process's own peak RSS. ``ru_maxrss`` would not do: Linux carries the parent's
    high-water mark across fork and exec, so every size would report the runner's memory."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_one(size: int) -> dict[str, float]:
    """Reconcile a fresh fleet of ``size``; runs in its own process (see ``run``)."""
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=scratch_dir()) as tmp:
        worker = _load_fleet(Path(tmp), size)
        worker.start_render_processes()  # process start-up, not the reconcile
        before_kib = _peak_rss_kib()
        start = time.perf_counter()
        done = worker.run_until_idle(timeout=3600)
        seconds = time.perf_counter() - start
        peak_kib = _peak_rss_kib()
        failed = worker.counts.get("failed", 0) + worker.counts.get("retry", 0)
        worker.close_render_processes()
        worker.engine.dispose()
    return {
        "size": size,
        "reconciled": done,
        "failed": failed,
        "seconds": seconds,
        "setup_rss_mib": before_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
    }


def fitted_exponent(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) against log(x): ``k`` in ``y ∝ xᵏ``."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the exponent needs at least two different sizes")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _sizes() -> list[int]:
    raw = os.environ.get("SCALING_SIZES", "")
    return [int(s) for s in raw.split(",") if s.strip()] if raw else list(SIZES)


def run() -> list[Figure]:
    figures: list[Figure] = []
    points: list[tuple[float, float]] = []
    for size in _sizes():
        out = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.bench_scaling", "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        points.append((size, m["seconds"]))
        figures += [
            Figure(AREA, f"{size:,} instances: cold reconcile", m["seconds"], "s"),
            Figure(AREA, f"{size:,} instances: per instance", m["seconds"] / size * 1000, "ms"),
            Figure(AREA, f"{size:,} instances: peak RSS", m["peak_rss_mib"], "MiB"),
            Figure(AREA, f"{size:,} instances: not converged", m["failed"], "count", "0"),
        ]
    if len({n for n, _ in points}) >= 2:
        figures.append(
            Figure(AREA, "fitted exponent k (time ∝ n^k)", fitted_exponent(points), "", GOAL)
        )
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure_one(int(sys.argv[2]))))
    else:
        for figure in run():
            print(f"{figure.name:55} {figure.value:12.3f} {figure.unit}")
