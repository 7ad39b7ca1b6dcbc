"""API latency with a Flemish fleet loaded: 285 tenants (the Statbel CSV) x 8 instances.

uvicorn on loopback, httpx clients, a bounded number of requests at a paced rate (goal:
p99 < 25 ms at 200 requests/s), for instance list and instance show, on SQLite and on
PostgreSQL. Prints figures; asserts nothing.

The server runs in its own process, as in production: clients in the server's process
would compete with it for the GIL and measure themselves. The figures also show the
machine's load average and the server's CPU time per request, since latency on a shared
machine says little without them.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlmodel import Session, select

from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.provisioning.models import Instance
from controlplane.provisioning.placement import ensure_default_target
from controlplane.settings import Settings
from controlplane.tenants.importing import import_municipalities
from controlplane.tenants.models import Tenant
from tests.benchmarks import Figure
from tests.factories import (
    MUNICIPALITIES_CSV,
    PostgresTemplate,
    SqliteTemplate,
    make_token,
    postgres_enabled,
    publish_demo,
)

REQUESTS = 1000
RATE = 200.0  # requests per second, paced across the clients
CLIENTS = 4
PER_TENANT = 8
TARGET = "p99 < 25 ms at 200 req/s"


def _load_fleet(url: str, folder: Path) -> tuple[str, list[tuple[str, str]]]:
    engine = make_engine(url)
    with Session(engine) as s:
        ensure_default_target(s, folder)
        import_municipalities(s, MUNICIPALITIES_CSV.read_text(encoding="utf-8"))
        publish_demo(s, "1.0.0")
        token = make_token(s, Role.OPERATOR)
        s.flush()
        pairs: list[tuple[str, str]] = []
        for tenant in s.exec(select(Tenant)).all():
            for i in range(PER_TENANT):
                name = f"app{i}"
                s.add(
                    Instance(
                        tenant_id=tenant.id,
                        name=name,
                        service="demo",
                        version="1.0.0",
                        plan="small",
                        parameters={"hostname": f"{name}.{tenant.slug}.be"},
                        target="local",
                        namespace=f"{tenant.slug}-{name}",
                    )
                )
                pairs.append((tenant.slug, name))
        s.commit()
    engine.dispose()
    return token, pairs


def _drive(base: str, token: str, paths: list[str]) -> list[float]:
    """Send ``paths`` at RATE overall from CLIENTS threads; latencies in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    interval = CLIENTS / RATE
    chunks = [paths[i::CLIENTS] for i in range(CLIENTS)]

    def client(chunk: list[str]) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            c.get("/api/v1/whoami")  # warm the connection
            start = time.perf_counter()
            for n, path in enumerate(chunk):
                wait = start + n * interval - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                t0 = time.perf_counter()
                r = c.get(path)
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _serve(url: str, folder: str, port: int) -> None:
    """The server process: the app on ``url`` under uvicorn (no embedded worker)."""
    import uvicorn

    engine = make_engine(url)
    app = create_app(Settings(data_dir=Path(folder), embedded_worker=False), engine=engine)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def _server(url: str, folder: Path) -> Iterator[tuple[str, int]]:
    """Base URL and pid of a server in a child process, stopped on leaving."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(url, str(folder), port), daemon=True
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not process.is_alive():
            process.kill()
            raise RuntimeError("the API server did not start")
        time.sleep(0.1)
    try:
        assert process.pid is not None
        yield base, process.pid
    finally:
        process.terminate()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(backend: str, url: str, folder: Path) -> list[Figure]:
    token, pairs = _load_fleet(url, folder)
    rng = random.Random(285)
    figures: list[Figure] = []
    with _server(url, folder) as (base, pid):
        for kind in ("list", "show"):
            paths = []
            for _ in range(REQUESTS):
                slug, name = rng.choice(pairs)
                base_path = f"/api/v1/tenants/{slug}/instances"
                paths.append(base_path if kind == "list" else f"{base_path}/{name}")
            cpu = _cpu_seconds(pid)
            ms = sorted(_drive(base, token, paths))
            cpu_ms = (_cpu_seconds(pid) - cpu) * 1000 / REQUESTS
            p50 = statistics.median(ms)
            p99 = ms[int(len(ms) * 0.99) - 1]
            figures.append(Figure("api", f"instance {kind} p50 ({backend})", p50, "ms", ""))
            figures.append(Figure("api", f"instance {kind} p99 ({backend})", p99, "ms", TARGET))
            figures.append(
                Figure("api", f"instance {kind} server CPU/request ({backend})", cpu_ms, "ms", "")
            )
    return figures


def run() -> list[Figure]:
    figures: list[Figure] = [
        Figure("api", "machine load average (1 min, at start)", os.getloadavg()[0], "", "")
    ]
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        folder = Path(tmp)
        figures += _figures("sqlite", SqliteTemplate(folder).clone(folder), folder)
        if postgres_enabled():
            template = PostgresTemplate()
            try:
                with template.clone() as url:
                    figures += _figures("postgresql", url, folder)
            finally:
                template.drop()
    for f in figures:
        print(f"{f.area:6} {f.name:44} {f.value:8.2f} {f.unit}  {f.target}")
    return figures


if __name__ == "__main__":
    run()
