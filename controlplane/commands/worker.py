"""`controlplane worker`: reconcile workers in their own process.

An adapter: it reads settings, builds the worker (``provisioning.embedding``, the same way
the API's lifespan builds the one `controlplane serve` embeds) and runs it until a signal.
The reconcile logic lives in ``controlplane.provisioning``.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from controlplane.errors import ControlPlaneError
from controlplane.provisioning.embedding import build_worker
from controlplane.settings import get_settings

log = logging.getLogger(__name__)


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
