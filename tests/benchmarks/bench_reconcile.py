"""Reconcile benchmarks: the Flemish fleet on GitOps, the no-op resync, and provisioning on
the real Kubernetes cluster (``make cluster``, or ``$CITY_TEST_KUBECONFIG``).

The fleet is every municipality in controlplane/tenants/data/flemish-municipalities.csv (285,
Source: Statbel, CC BY 4.0) x the 8 services of the shipped catalogue = 2,280 instances,
reconciled by one worker on SQLite into a GitOps tree (the catalogue now has 12 services:
3,420). The no-op figure is a full resync of that fleet after it converged: it must write
nothing (files counted by inode and mtime). Each time is printed as the total, with the
issue's target scaled to the fleet measured, and per instance (``TARGET_FLEET``).

Scale-out: the same fleet on PostgreSQL (a fresh ``cp_bench_<random>`` database per run, on
the tests' server, dropped afterwards) reconciled by 1 and 2 worker *processes* into one
shared GitOps tree. Each process is ``python -m tests.benchmarks.bench_reconcile --worker
URL``: the production ``Worker`` + ``Reconciler`` until the queue is empty. The processes
start, say "ready" and are released together; the time runs from the release until the
database shows every instance Ready at its generation. Then the no-op resync with the most
processes. Without a reachable PostgreSQL these figures are skipped with a printed line.

Cluster: up to 20 stacks (every plan of each service's newest release) of one tenant with a
random slug, applied by the production worker through the fault proxy (which counts the
writes), then the reconcile that finds them Ready; see ``_cluster_figures``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, func, make_url, or_, select, text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, col

import controlplane.tables  # noqa: F401
from controlplane import migrations
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.records import PublishedVersion
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.provisioning import queueing
from controlplane.provisioning.models import (
    Instance,
    Phase,
    ReconcileRequest,
    Target,
    TargetKind,
)
from controlplane.provisioning.reconciling import Outcome, Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.settings import Settings
from controlplane.tenants.models import Tenant
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.benchmarks import Figure
from tests.benchmarks.bench_scaling import scratch_dir

if TYPE_CHECKING:
    from controlplane.kube.client import KubeClient

MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV
SECRET = b"bench-server-secret-0123456789abcdef"
#: Render processes of the fleet worker: the installation default (``Settings``: one per
#: CPU), or ``CONTROLPLANE_RENDER_PROCESSES`` (0 measures the in-process render).
RENDER_PROCESSES = Settings().resolved_render_processes()


#: The issue's targets were set for 285 municipalities x 8 services = 2,280 instances: a cold
#: reconcile under 10 s and a no-op resync under 2 s. Per instance they stay comparable when
#: the catalogue grows; the totals printed beside them are scaled to the fleet measured.
TARGET_FLEET = 2280
COLD_TARGET_SECONDS = 10.0
NOOP_TARGET_SECONDS = 2.0
COLD_TARGET_MS = COLD_TARGET_SECONDS / TARGET_FLEET * 1000  # 4.39 ms per instance
NOOP_TARGET_MS = NOOP_TARGET_SECONDS / TARGET_FLEET * 1000  # 0.88 ms per instance


def _fleet_targets(seconds: float, count: int) -> tuple[str, str]:
    """(total target scaled to ``count`` instances, per-instance target), as printed."""
    per_instance = seconds / TARGET_FLEET * 1000
    return f"< {per_instance * count / 1000:.0f} s", f"< {per_instance:.2f} ms"


def _time_figures(label: str, seconds: float, count: int, target: float) -> list[Figure]:
    """A fleet time as the total (target scaled to the fleet) and per instance."""
    total, per_instance = _fleet_targets(target, count)
    return [
        Figure("reconcile", label, seconds, "s", total),
        Figure(
            "reconcile",
            f"{label}, per instance",
            seconds / max(count, 1) * 1000,
            "ms",
            per_instance,
        ),
    ]


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


def _load_fleet(engine: Engine, tree: Path, sealing: Path) -> int:
    """Publish the catalogue, add the GitOps target and queue the whole fleet (not timed)."""
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
    return count


def _reconciler(engine: Engine) -> Reconciler:
    return Reconciler(
        engine, server_secret=SECRET, targets=TargetRegistry(), settings=ReconcileSettings()
    )


def _fleet(engine_url: str, tree: Path, sealing: Path) -> tuple[Worker, int]:
    engine = make_engine(engine_url)
    SQLModel.metadata.create_all(engine)
    count = _load_fleet(engine, tree, sealing)
    # The embedded default: render processes as the settings make them (the CPU count).
    worker = Worker(engine, _reconciler(engine), batch_size=200, render_processes=RENDER_PROCESSES)
    return worker, count


def _fleet_dir() -> str:
    """Where the fleet's tree goes: ``BENCH_FLEET_DIR``, else tmpfs, else ``.bench``.

    tmpfs by default, like the scaling curve and the scale-out: on these VMs the cost of
    creating a file on the ext4 disk depends on the folder it is made in (measured 11 to
    470 µs per file in sibling folders of one checkout, CPU time in the kernel's inode
    allocator), which would measure the VM's disk rather than the platform
    (docs/benchmarks.md). ``BENCH_FLEET_DIR=.bench`` measures on the project disk.
    """
    return os.environ.get("BENCH_FLEET_DIR") or scratch_dir() or _bench_dir()


def _resync(worker: Worker, tree: Path) -> tuple[float, int]:
    """Make every instance due, resync the fleet; (seconds, files written or removed)."""
    before = _snapshot(tree)
    with Session(worker.engine) as session:
        session.execute(update(ReconcileRequest).values(due_at=utcnow()))
        session.commit()
    start = time.perf_counter()
    worker.run_until_idle(timeout=600)
    seconds = time.perf_counter() - start
    after = _snapshot(tree)
    changed = sum(1 for k, v in after.items() if before.get(k) != v) + len(set(before) - set(after))
    return seconds, changed


def _fleet_figures() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-", dir=_fleet_dir()) as tmp:
        root = Path(tmp)
        cert = ensure_keypair(root / "sealing", key_size=2048)
        worker, count = _fleet(f"sqlite:///{root / 'cp.db'}", root / "tree", cert)
        worker.start_render_processes()  # process start-up, not the reconcile
        start = time.perf_counter()
        worker.run_until_idle(timeout=600)
        cold = time.perf_counter() - start
        failed = worker.counts.get("failed", 0)
        files = len(_snapshot(root / "tree"))
        # The first resync after the cold reconcile reads every file (the worker has read
        # none yet); the next ones skip the folders whose files kept their identity since
        # (docs/gitops.md): that is the resync an unchanged fleet runs every period.
        first, first_changed = _resync(worker, root / "tree")
        steady, steady_changed = _resync(worker, root / "tree")
        unchanged = worker.counts.get(Outcome.UNCHANGED, 0)
        worker.close_render_processes()
        return [
            *_time_figures(
                f"fleet cold reconcile to GitOps ({count} instances, "
                f"{RENDER_PROCESSES} render processes, tree on {_fs_type(root)})",
                cold,
                count,
                COLD_TARGET_SECONDS,
            ),
            Figure("reconcile", "fleet instances failed", float(failed), "count", "0"),
            Figure("reconcile", "fleet files written", float(files), "files"),
            *_time_figures(
                "fleet no-op resync (first: reads every file)", first, count, NOOP_TARGET_SECONDS
            ),
            *_time_figures("fleet no-op resync (steady state)", steady, count, NOOP_TARGET_SECONDS),
            Figure(
                "reconcile",
                "fleet no-op files written (both resyncs)",
                float(first_changed + steady_changed),
                "files",
                "0",
            ),
            Figure(
                "reconcile",
                "fleet no-op instances not unchanged (both resyncs)",
                float(2 * count - unchanged),
                "count",
                "0",
            ),
        ]


def _fs_type(path: Path) -> str:
    """The file system type of ``path`` (from /proc/mounts; "disk" when unknown)."""
    best, kind = "", "disk"
    where = str(path.resolve())
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                inside = len(fields) > 2 and where.startswith(fields[1].rstrip("/") + "/")
                if inside and len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


# -- scale-out: worker processes on PostgreSQL ----------------------------------------------

#: The server used by the PostgreSQL figures (the tests' variable: same server, same user).
POSTGRES_URL = os.environ.get(
    "CONTROLPLANE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: Worker processes measured for the cold fleet; the no-op resync runs with the largest.
PROCESS_COUNTS = (1, 2)
#: Claims per batch in a worker process. Smaller than the SQLite figure's 200 so that the
#: processes finish close together (the last batch of one is the other's idle time).
PG_BATCH_SIZE = 50
POLL_SECONDS = 0.05


@dataclass
class _Run:
    seconds: float  # from "go" to the condition seen in the database
    startup: float  # process start to "ready" (imports, engine, reconciler), slowest process
    counts: Counter[str]  # reconcile outcomes summed over the processes
    cpu: list[float]  # CPU seconds (user + system) of each process while it reconciled


def _scaleout_dir() -> str:
    """Where the scale-out tree goes: ``BENCH_SCALEOUT_DIR``, else tmpfs, else ``.bench``.

    tmpfs by default, like the scaling curve: the figure asks whether worker processes share
    the reconcile, and on these shared VMs file creation on the disk varies 3x with the other
    jobs' I/O, which would hide the answer (docs/benchmarks.md).
    """
    return os.environ.get("BENCH_SCALEOUT_DIR") or scratch_dir() or _bench_dir()


def _admin_engine() -> Engine | None:
    """An AUTOCOMMIT engine on the PostgreSQL server, or None (with a skip line) when absent."""
    engine = create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        first = str(exc.orig or exc).strip().splitlines()[0]
        print(f"reconcile: PostgreSQL figures skipped: {POSTGRES_URL} unreachable ({first})")
        return None
    return engine


def _url_for(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def _instance_folders(tree: Path) -> int:
    """Folders ``tree/<tenant>/<instance>``; staging folders (dot-named) do not count."""
    if not tree.is_dir():
        return 0
    return sum(
        1
        for tenant in tree.iterdir()
        if tenant.is_dir() and not tenant.name.startswith(".")
        for folder in tenant.iterdir()
        if folder.is_dir() and not folder.name.startswith(".")
    )


def _converged(engine: Engine) -> tuple[int, int]:
    """(instances settled at their generation, instances Failed), as the database has them.

    Settled: Ready, or Committed on a GitOps target that does not observe the cluster."""
    with Session(engine) as session:
        ready = session.execute(
            select(func.count())
            .select_from(Instance)
            .where(
                col(Instance.phase).in_((Phase.READY, Phase.COMMITTED)),
                col(Instance.observed_generation) == col(Instance.generation),
            )
        ).scalar_one()
        failed = session.execute(
            select(func.count()).select_from(Instance).where(col(Instance.phase) == Phase.FAILED)
        ).scalar_one()
    return int(ready), int(failed)


def _not_visited_since(engine: Engine, since: datetime) -> int:
    """Requests not yet finished after ``since`` (still due by then, or leased right now)."""
    with Session(engine) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(ReconcileRequest)
                .where(
                    or_(
                        col(ReconcileRequest.due_at) <= since,
                        col(ReconcileRequest.lease_owner).is_not(None),
                    )
                )
            ).scalar_one()
        )


def _run_workers(url: str, processes: int, done: Callable[[], bool]) -> _Run:
    """Start ``processes`` worker processes, release them together, time until ``done()``.

    Each process imports the platform and builds its worker before it says "ready"; the
    clock starts when all are released, so the figure is the reconcile, not Python start-up
    (reported beside it). It stops when ``done()`` holds in the database, or when every
    process has exited (the caller then reports what did not converge).
    """
    command = [sys.executable, "-m", "tests.benchmarks.bench_reconcile", "--worker", url]
    procs: list[subprocess.Popen[str]] = []
    try:
        launched = time.perf_counter()
        for _ in range(processes):
            procs.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a bench worker process did not start (said {line!r})")
        startup = time.perf_counter() - launched
        start = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while not done() and any(proc.poll() is None for proc in procs):
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - start
        counts: Counter[str] = Counter()
        cpu: list[float] = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a bench worker process exited with {proc.returncode}")
            report = json.loads(out.strip().splitlines()[-1])
            counts.update(report["counts"])
            cpu.append(float(report["cpu"]))
        return _Run(seconds, startup, counts, cpu)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _worker_process(url: str) -> None:
    """One bench worker process: the production ``Worker`` + ``Reconciler`` until idle."""
    engine = make_engine(url)
    worker = Worker(
        engine,
        _reconciler(engine),
        batch_size=PG_BATCH_SIZE,
        fleet=False,
        name=f"bench-worker-{os.getpid()}",
    )
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every process starts at once
    start = time.perf_counter()
    cpu = time.process_time()
    worker.run_until_idle(timeout=600)
    report = {
        "counts": dict(worker.counts),
        "seconds": time.perf_counter() - start,
        # All threads of this process (user + system): with the wall time, says whether
        # the process computed or waited (disk, database, the other process).
        "cpu": time.process_time() - cpu,
    }
    engine.dispose()
    print(json.dumps(report), flush=True)


def _measure_processes(
    url: str, processes: int, count: int, tree: Path, *, noop: bool
) -> list[Figure]:
    """A cold fleet reconcile by ``processes`` worker processes; then the no-op if asked."""
    label = f"fleet on PostgreSQL, {processes} worker process" + ("es" if processes > 1 else "")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        cold = _run_workers(url, processes, lambda: _converged(engine)[0] == count)
        ready, failed = _converged(engine)
        figures = [
            *_time_figures(
                f"{label}: cold reconcile to GitOps ({count} instances)",
                cold.seconds,
                count,
                COLD_TARGET_SECONDS,
            ),
            Figure("reconcile", f"{label}: process start-up (not in the time)", cold.startup, "s"),
            Figure("reconcile", f"{label}: worker CPU, all processes", sum(cold.cpu), "s"),
            Figure(
                "reconcile",
                f"{label}: instances failed or not converged",
                float(failed + count - ready),
                "count",
                "0",
            ),
            Figure(
                "reconcile",
                f"{label}: instance folders",
                float(_instance_folders(tree)),
                "folders",
                str(count),
            ),
        ]
        if not noop:
            return figures
        before = _snapshot(tree)
        with Session(engine) as session:
            session.execute(update(ReconcileRequest).values(due_at=utcnow()))
            session.commit()
        since = utcnow()
        resync = _run_workers(url, processes, lambda: _not_visited_since(engine, since) == 0)
        after = _snapshot(tree)
        changed = sum(1 for k, v in after.items() if before.get(k) != v) + len(
            set(before) - set(after)
        )
        return [
            *figures,
            *_time_figures(f"{label}: no-op resync", resync.seconds, count, NOOP_TARGET_SECONDS),
            Figure("reconcile", f"{label}: no-op files written", float(changed), "files", "0"),
            Figure(
                "reconcile",
                f"{label}: no-op instances not unchanged",
                float(count - resync.counts.get(Outcome.UNCHANGED, 0)),
                "count",
                "0",
            ),
        ]
    finally:
        engine.dispose()


def _postgres_figures() -> list[Figure]:
    admin = _admin_engine()
    if admin is None:
        return []
    created: list[str] = []

    def create(template: str | None = None) -> str:
        name = f"cp_bench_{secrets.token_hex(6)}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        created.append(name)
        return name

    figures: list[Figure] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-", dir=_scaleout_dir()) as tmp:
            root = Path(tmp).resolve()
            tree = root / "tree"
            cert = ensure_keypair(root / "sealing", key_size=2048)
            # The fleet is loaded once into a template; each run gets a copy of it (cold).
            template = create()
            engine = make_engine(_url_for(template))
            migrations.upgrade(engine)
            count = _load_fleet(engine, tree, cert)
            engine.dispose()
            for processes in PROCESS_COUNTS:
                shutil.rmtree(tree, ignore_errors=True)
                url = _url_for(create(template))
                figures += _measure_processes(
                    url, processes, count, tree, noop=processes == max(PROCESS_COUNTS)
                )
    finally:
        with admin.connect() as conn:
            for name in reversed(created):  # the copies before their template
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return figures


#: Stacks of the cluster figures: every plan of each service's newest release, at most this many
#: (one worker batch, so the first apply is one ``run_once``).
CLUSTER_STACKS = 20
#: How long the cluster's controllers (and kwok) may take to make the stacks Ready.
CLUSTER_SETTLE_SECONDS = 300.0


def _cluster_kubeconfig() -> Path | None:
    """The cluster's admin kubeconfig, or None (with a skip line) when it cannot be had."""
    from tests.cluster.local import ClusterError
    from tests.soak.runner import cluster_kubeconfig

    try:
        return cluster_kubeconfig()
    except ClusterError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"reconcile: cluster figures skipped: the cluster did not start ({first})")
        return None


def _workloads_ready(port: KubeClient, tenant: str) -> bool:
    """Whether every workload the platform labelled with ``tenant`` is ready."""
    from controlplane.kube.readiness import WORKLOAD_KINDS, evaluate

    selector = f"city-platform.be/tenant={tenant}"
    versions = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}
    for kind in sorted(WORKLOAD_KINDS):
        for obj in port.list_objects(versions[kind], kind, None, label_selector=selector):
            if not evaluate(f"{kind}/{obj['metadata']['name']}", kind, obj).ready:
                return False
    return True


def _cluster_figures() -> list[Figure]:
    """Provisioning on the real cluster (``$CITY_TEST_KUBECONFIG`` or ``make cluster``).

    One tenant with a random slug (the cluster is shared), up to ``CLUSTER_STACKS`` stacks.
    The target talks to the apiserver through the fault proxy (no faults: it counts the
    writes). Three figures per stack: the first apply (one worker batch: render, server-side
    apply of every object, prune, first readiness look), the writes it took, and the
    readiness pass (after the controllers made every workload ready, every stack is made due
    and the worker's reconcile reads it back, finds no drift and records it Ready; it must
    write nothing). The controllers' settling is reported apart: it is the cluster's time,
    not the platform's. Every namespace is deleted afterwards (not awaited).
    """
    from controlplane.kube.client import KubeClient
    from controlplane.provisioning.targets.kubernetes import KubernetesTarget
    from tests.cluster.proxy import FaultProxy

    kubeconfig = _cluster_kubeconfig()
    if kubeconfig is None:
        return []
    slug = f"bench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(dir=_bench_dir()) as tmp, FaultProxy(kubeconfig) as proxy:
        root = Path(tmp)
        engine = make_engine(f"sqlite:///{root / 'cp.db'}")
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
                releases[release.name] = release  # the newest wins (sorted by version)
            session.add(Target(name="cluster", kind=TargetKind.KUBERNETES, config={}))
            tenant = Tenant(slug=slug, name="Gent", nis_code="44021")
            session.add(tenant)
            session.flush()
            stacks = [
                (service, release, plan.name)
                for service, release in sorted(releases.items())
                for plan in release.plans
            ][:CLUSTER_STACKS]
            namespaces = []
            for index, (service, release, plan) in enumerate(stacks):
                name = f"{service[:12]}-{index}"
                instance = Instance(
                    tenant_id=tenant.id,
                    name=name,
                    service=service,
                    version=release.version.version,
                    plan=plan,
                    parameters={},
                    target="cluster",
                    namespace=f"{slug}-{name}",
                )
                namespaces.append(instance.namespace)
                session.add(instance)
                session.flush()
                queueing.enqueue(session, instance.id)
            session.commit()
        port = KubeClient(proxy.api_client())
        target = KubernetesTarget(port, name="cluster")
        reconciler = Reconciler(
            engine,
            server_secret=SECRET,
            targets=TargetRegistry(overrides={"cluster": target}),
            settings=ReconcileSettings(not_ready_seconds=0),
        )
        worker = Worker(engine, reconciler, batch_size=CLUSTER_STACKS)
        admin = KubeClient.from_kubeconfig(str(kubeconfig))
        try:
            start = time.perf_counter()
            done = worker.run_once()
            applied = time.perf_counter() - start
            writes = proxy.writes.total
            # The controllers' time: Deployments → ReplicaSets → Pods on the kwok nodes,
            # StatefulSets with their claims bound. Read directly, not through the proxy.
            start = time.perf_counter()
            deadline = start + CLUSTER_SETTLE_SECONDS
            while not _workloads_ready(admin, slug) and time.perf_counter() < deadline:
                time.sleep(0.5)
            settle = time.perf_counter() - start
            # Stacks seen ready at their first look are not due again for the resync period:
            # make every one due, so the pass reads each stack back and finds it Ready.
            with Session(engine) as session:
                session.execute(update(ReconcileRequest).values(due_at=utcnow()))
                session.commit()
            proxy.writes.reset()
            start = time.perf_counter()
            passed = worker.run_until_idle(timeout=120)
            ready = time.perf_counter() - start
            pass_writes = proxy.writes.total
            with Session(engine) as session:
                not_ready = session.execute(
                    select(func.count())
                    .select_from(Instance)
                    .where(col(Instance.phase) != Phase.READY)
                ).scalar_one()
        finally:
            for namespace in namespaces:
                with contextlib.suppress(Exception):
                    admin.delete_namespace(namespace, wait=False)
            admin.close()
            port.close()
            engine.dispose()
        count = max(done, 1)
        return [
            Figure("reconcile", "cluster: first apply per stack", applied / count * 1000, "ms"),
            Figure("reconcile", "cluster: writes per stack", writes / count, "requests"),
            Figure(
                "reconcile",
                "cluster: readiness pass per stack",
                ready / max(passed, 1) * 1000,
                "ms",
            ),
            Figure(
                "reconcile",
                "cluster: writes in the readiness pass",
                float(pass_writes),
                "requests",
                "0",
            ),
            Figure(
                "reconcile",
                "cluster: controllers settle the stacks to Ready (not the platform's time)",
                settle,
                "s",
            ),
            Figure("reconcile", "cluster: stacks not Ready", float(not_ready), "count", "0"),
        ]


def run() -> list[Figure]:
    return [*_fleet_figures(), *_postgres_figures(), *_cluster_figures()]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker_process(sys.argv[2])
        sys.exit(0)
    for figure in run():
        print(f"{figure.name}: {figure.value:.3f} {figure.unit} (target {figure.target})")
