"""The FastAPI application: routers, problem handlers, middleware, metrics.

``create_app`` is the one way to build it (server, tests, benchmarks): settings and
engine can be injected, everything else hangs off ``app.state``. With
``settings.embedded_worker`` the app's lifespan runs one reconcile worker (``app.state.worker``)
after start-up created the default target, and stops it on shutdown; the instance routes
call ``app.state.wake_worker()`` after recording a change so it starts at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

import controlplane
from controlplane.api import problems
from controlplane.api.gate import RequestGate
from controlplane.api.middleware import IdempotencyMiddleware, Metrics, RequestContextMiddleware
from controlplane.api.routes import audit, catalog, instances, system, targets, tenants, tokens
from controlplane.api.routes import billing as billing_routes
from controlplane.api.routes import billing_metering as billing_metering_routes
from controlplane.api.routes import billing_vat as billing_vat_routes
from controlplane.api.routes import fleet as fleet_routes
from controlplane.db.engine import make_engine
from controlplane.provisioning.admission import parameter_check
from controlplane.provisioning.embedding import build_worker
from controlplane.provisioning.models import Instance, Phase
from controlplane.provisioning.placement import ensure_default_target
from controlplane.provisioning.server_secret import resolve_server_secret
from controlplane.provisioning.worker import Worker
from controlplane.settings import Settings, get_settings

log = logging.getLogger("controlplane.api")


class InstancePhaseCollector(Collector):
    """``controlplane_instances{phase=…}``: live instances by phase, counted at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "controlplane_instances", "Live instances by phase.", labels=["phase"]
        )
        counts = {phase.value: 0 for phase in Phase}
        try:
            with Session(self.engine) as session:
                rows = session.exec(
                    select(Instance.phase, func.count())
                    .where(col(Instance.deleted_at).is_(None))
                    .group_by(Instance.phase)
                ).all()
            counts.update({str(phase): int(n) for phase, n in rows})
        except Exception:  # a scrape must not fail because the database hiccups
            log.warning("could not count instances for /metrics")
        for phase, n in counts.items():
            gauge.add_metric([phase], n)
        yield gauge


def _no_worker() -> None:
    """No worker in this process (``CONTROLPLANE_EMBEDDED_WORKER=false``): workers elsewhere
    find the change at their next poll."""


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Session(engine) as session:
            ensure_default_target(session, settings.data_dir)
            session.commit()
        worker: Worker | None = None
        if settings.embedded_worker:
            # After the default target exists, so that the worker seals it (a fresh data
            # directory gets its sealing keypair here; 4096-bit RSA takes a few seconds, so
            # off the event loop).
            worker = await anyio.to_thread.run_sync(
                lambda: build_worker(settings, engine=engine, concurrency=1)
            )
            worker.start()
            app.state.worker = worker
            app.state.wake_worker = worker.notify
        try:
            yield
        finally:
            app.state.wake_worker = _no_worker
            if worker is not None:
                # Lets the reconcile in progress finish; stop() is idempotent.
                await anyio.to_thread.run_sync(worker.stop)

    app = FastAPI(
        title="City Platform control plane",
        version=controlplane.__version__,
        description=(
            "Provision standardized, cost-shared application stacks for municipalities. "
            "Errors are application/problem+json; see docs/api.md."
        ),
        lifespan=lifespan,
    )
    registry = CollectorRegistry()
    registry.register(InstancePhaseCollector(engine))
    metrics = Metrics(registry)
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.worker = None
    #: Called by the routes after each recorded change of desired state (see _no_worker).
    app.state.wake_worker = _no_worker
    app.state.check_parameters = parameter_check(
        resolve_server_secret(settings), settings.kubernetes_version
    )
    problems.install(app)
    for module in (system, tenants, instances, catalog, targets, tokens, audit):
        app.include_router(module.router)
    app.include_router(billing_routes.router)
    app.include_router(billing_metering_routes.router)
    app.include_router(billing_vat_routes.router)
    app.include_router(fleet_routes.router)
    # Outermost last: request id and headers → gate (size, token, role) → idempotency.
    app.add_middleware(
        IdempotencyMiddleware,
        engine=engine,
        claim_timeout=timedelta(seconds=settings.idempotency_claim_seconds),
        retention=timedelta(hours=settings.idempotency_retention_hours),
    )
    app.add_middleware(
        RequestGate,
        engine=engine,
        openapi=app.openapi,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        metrics_on_api_port=settings.metrics_port is None,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
