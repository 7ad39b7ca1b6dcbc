"""Building this installation's reconcile worker from its settings.

``controlplane worker`` and the worker that ``controlplane serve`` embeds in the API's
lifespan are built here, the same way: one engine, the installation's server secret
(:func:`~controlplane.provisioning.server_secret.resolve_server_secret`), the target
registry, and — for the embedded default — a sealing keypair for the GitOps target in the
data directory, so that stacks with Secrets can be written on a fresh machine.

This module must not know about HTTP or Typer: adapters call it and keep the worker.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.db.engine import make_engine
from controlplane.provisioning.models import Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.server_secret import resolve_server_secret
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.settings import Settings


def seal_default_gitops_target(engine: Engine, settings: Settings) -> None:
    """Give GitOps targets under the data directory a sealing keypair (embedded default).

    The private key stays in ``<data_dir>/sealing`` — outside the GitOps tree — and
    docs/gitops.md explains importing it into the cluster's sealed-secrets controller.
    Targets elsewhere are left alone: their operator points them at the cluster's certificate.
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
    """A worker (not started) for this installation; seals the embedded GitOps target first."""
    engine = engine or make_engine(settings.resolved_database_url())
    seal_default_gitops_target(engine, settings)
    reconciler = Reconciler(
        engine,
        server_secret=resolve_server_secret(settings),
        targets=TargetRegistry(),
        settings=ReconcileSettings(),
    )
    return Worker(
        engine,
        reconciler,
        concurrency=concurrency,
        poll_seconds=settings.worker_poll_seconds,
        render_processes=settings.resolved_render_processes(),
        kubernetes_version=settings.kubernetes_version,
    )
