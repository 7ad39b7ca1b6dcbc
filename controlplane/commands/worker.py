"""`controlplane worker`, and the worker that `controlplane serve` embeds.

An adapter: it reads settings, builds the engine, the reconciler and the worker, and runs
them until a signal. The reconcile logic lives in ``controlplane.provisioning``.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.db.engine import make_engine
from controlplane.errors import ControlPlaneError
from controlplane.provisioning.models import Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.settings import Settings, get_settings

log = logging.getLogger(__name__)

SECRET_FILE = "server-secret"  # noqa: S105 - a file name, not a secret


def resolve_server_secret(settings: Settings) -> bytes:
    """The configured server secret, or one generated once and kept in the data directory.

    Every process of one installation (API and workers) must use the same secret, or
    generated credentials change; in production set ``CONTROLPLANE_SERVER_SECRET``.
    """
    configured = settings.server_secret.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.data_dir / SECRET_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def seal_default_gitops_target(engine: Engine, settings: Settings) -> None:
    """Give GitOps targets under the data directory a sealing keypair (embedded default).

    The private key stays in ``<data_dir>/sealing`` — outside the GitOps tree — and
    docs/gitops.md explains importing it into the cluster's sealed-secrets controller.
    """
    data_dir = settings.data_dir.resolve()
    with Session(engine) as session:
        for row in session.exec(select(Target).where(Target.kind == TargetKind.GITOPS)).all():
            config = dict(row.config or {})
            path = Path(str(config.get("path", "")))
            if config.get("sealing_cert") or not path.is_relative_to(data_dir):
                continue
            config["sealing_cert"] = str(ensure_keypair(data_dir / "sealing"))
            row.config = config
            session.add(row)
        session.commit()


def build_worker(
    settings: Settings, *, engine: Engine | None = None, concurrency: int = 1
) -> Worker:
    engine = engine or make_engine(settings.resolved_database_url())
    reconciler = Reconciler(
        engine,
        server_secret=resolve_server_secret(settings),
        targets=TargetRegistry(),
        settings=ReconcileSettings(),
    )
    return Worker(engine, reconciler, concurrency=concurrency)


def start_embedded_worker(app: Any, settings: Settings, engine: Engine | None = None) -> Worker:
    """Start one worker thread inside `controlplane serve`; stored on ``app.state.worker``.

    The API can call ``app.state.worker.notify()`` after recording a change, so the worker
    starts at once instead of at its next poll; the server stops it on shutdown.
    """
    worker = build_worker(settings, engine=engine, concurrency=1)
    seal_default_gitops_target(worker.engine, settings)
    worker.start()
    state = getattr(app, "state", None)
    if state is not None:
        state.worker = worker
    return worker


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)


def worker_command(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, help="Worker threads (more than 1 needs PostgreSQL)."
        ),
    ] = 1,
    once: Annotated[
        bool, typer.Option("--once", help="Reconcile until nothing is due, then exit.")
    ] = False,
) -> None:
    """Run reconcile workers: make every instance's desired state true on its target."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    try:
        worker = build_worker(settings, concurrency=concurrency)
        seal_default_gitops_target(worker.engine, settings)
        if once:
            done = worker.run_until_idle(timeout=3600)
            typer.echo(f"reconciled {done} request(s)")
            return
        stopped = threading.Event()

        def _stop(signum: int, _frame: object) -> None:
            stopped.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        worker.start()
        typer.echo(f"worker {worker.name} running with {concurrency} thread(s); Ctrl-C stops it")
        stopped.wait()
        worker.stop()
    except ControlPlaneError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
