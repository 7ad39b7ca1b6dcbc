"""A reconcile worker process for the soak: ``controlplane worker`` with soak-sized timings.

The soak kills workers with SIGKILL and must then converge within a bounded wait, so the
lease (how long a dead worker's claim blocks others) and the backoffs are seconds instead of
the production minutes. Everything else is the production path: the settings from the
environment (``CONTROLPLANE_*``), the server secret, the target built from its database row,
``Reconciler`` and ``Worker``. Run as ``python -m tests.soak.worker``; SIGTERM stops it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from controlplane.db.engine import make_engine
from controlplane.provisioning.queueing import Backoff
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.server_secret import resolve_server_secret
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.worker import Worker
from controlplane.settings import get_settings

#: A killed worker's claims are free again after this many seconds.
LEASE_SECONDS = float(os.environ.get("SOAK_LEASE_SECONDS", "15"))

SOAK_RECONCILE = ReconcileSettings(
    resync_seconds=30.0,
    not_ready_seconds=1.0,
    retry=Backoff(base=0.5, cap=4.0),
    failed=Backoff(base=1.0, cap=4.0),
)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url())
    reconciler = Reconciler(
        engine,
        server_secret=resolve_server_secret(settings),
        targets=TargetRegistry(),
        settings=SOAK_RECONCILE,
    )
    worker = Worker(
        engine,
        reconciler,
        concurrency=1,
        poll_seconds=0.2,
        lease_seconds=LEASE_SECONDS,
        batch_size=1,
        name=f"soak-worker-{os.getpid()}",
        fleet=False,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    worker.start()
    stopped.wait()
    worker.stop()
    engine.dispose()


if __name__ == "__main__":
    main()
