"""Factories of the fleet tests: a small service whose 2.0.0 adds a Deployment, a platform
on the real cluster, a clock the tests move, and a driver that alternates the fleet
executor's tick with the reconcile worker.

Version 1.0.0 has a ConfigMap and a Secret; 2.0.0 changes the ConfigMap, drops nothing and
adds a ``web`` Deployment — so an instance can be made to fail on 2.0.0 only and recover by
the rollback to 1.0.0 (which prunes it). An instance fails by its ``pool`` parameter: its
pods select a node pool no node has, stay Pending, and the real deployment controller
declares the rollout failed after a two-second progress deadline.

Tenant slugs get a random suffix per world (the cluster is shared); the world deletes the
namespaces of its instances when the test ends.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, col, select

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.catalog.models import ServiceRelease, ServiceVersion, TemplateBundle
from controlplane.catalog.records import PublishedVersion
from controlplane.kube.client import KubeClient
from controlplane.kube.retrying import RetryPolicy
from controlplane.provisioning import fleet, queueing
from controlplane.provisioning.fleet.models import FleetRun, FleetRunItem
from controlplane.provisioning.models import Instance, Phase, Target, TargetKind
from controlplane.provisioning.reconciling import Reconciler
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.worker import Worker
from controlplane.rendering import Renderer
from controlplane.tenants.models import Tenant
from tests.cluster.fixtures import Cluster
from tests.provisioning.conftest import (
    SECRET,
    SERVER_SECRET,
    fast_settings,
    greeting_schema,
    plan_of,
)

SERVICE = "shop"

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: {{ params.greeting }}
  version: {{ service.version }}
"""
WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/component: web
spec:
  replicas: {{ plan.replicas }}
  progressDeadlineSeconds: {{ 2 if params.pool else 600 }}
  selector:
    matchLabels:
      app.kubernetes.io/component: web
      app.kubernetes.io/instance: {{ instance.name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: web
        app.kubernetes.io/instance: {{ instance.name }}
    spec:
      automountServiceAccountToken: false
{%- if params.pool %}
      nodeSelector:
        city-platform.be/pool: {{ params.pool }}
{%- endif %}
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: web
          image: {{ images.web }}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
          resources:
            requests:
              cpu: {{ plan.cpu.request }}
              memory: {{ plan.memory.request }}
            limits:
              cpu: {{ plan.cpu.limit }}
              memory: {{ plan.memory.limit }}
"""


def shop_schema() -> dict[str, Any]:
    """``greeting``, and ``pool``: a node pool for the pods (no node has one: they never run)."""
    schema = greeting_schema()
    schema["properties"]["pool"] = {"type": "string", "default": ""}
    return schema


def shop_release(version: str) -> ServiceRelease:
    files = {"10-config.yaml.j2": CONFIG, "20-secret.yaml.j2": SECRET}
    images: dict[str, str] = {}
    if not version.startswith("1."):
        files["30-web.yaml.j2"] = WEB
        images["web"] = f"registry.example/shop:{version}"
    return ServiceRelease(
        name=SERVICE,
        title="Shop",
        description="A small test service for fleet upgrades.",
        category="test",
        owner="tests",
        version=ServiceVersion(
            version=version,
            templates=f"shop/{version}",
            app_version=version,
            images=images,
            upgrade_from="" if version.startswith("1.") else ">=1.0.0,<2.0.0",
        ),
        plans=[plan_of("small", 1)],
        parameters=shop_schema(),
        bundle=TemplateBundle(files=files),
    )


#: A Saturday, 12:00 UTC (13:00 in Brussels, winter time).
SATURDAY_NOON = datetime(2025, 1, 4, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = SATURDAY_NOON

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class FleetWorld:
    """A database with ``shop`` 1.0.0 and 2.0.0 published, the real cluster as target."""

    engine: Engine
    cluster: Cluster
    worker: Worker
    suffix: str = field(default_factory=lambda: secrets.token_hex(2))
    clock: Clock = field(default_factory=Clock)
    renderer: Renderer = field(
        default_factory=lambda: Renderer(server_secret=SERVER_SECRET, kubernetes_version="1.33")
    )

    def renderer_for(self, _version: str) -> Renderer:
        return self.renderer

    def tenant(self, slug: str, window: dict[str, Any] | None = None) -> Tenant:
        """A tenant whose slug is ``slug`` plus the world's suffix (see ``slug``)."""
        with Session(self.engine, expire_on_commit=False) as session:
            tenant = Tenant(
                slug=self.slug(slug),
                name=slug.title(),
                nis_code=f"{10000 + int(uuid.uuid4().int % 89999):05d}",
                maintenance_window=window or {},
            )
            session.add(tenant)
            session.commit()
            return tenant

    def slug(self, slug: str) -> str:
        return f"{slug}-{self.suffix}"

    def instance(
        self,
        tenant: Tenant,
        name: str,
        version: str = "1.0.0",
        parameters: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        with Session(self.engine, expire_on_commit=False) as session:
            row = Instance(
                tenant_id=tenant.id,
                name=name,
                service=SERVICE,
                version=version,
                plan="small",
                parameters=parameters or {},
                target="main",
                namespace=f"{tenant.slug}-{name}",
            )
            session.add(row)
            session.flush()
            queueing.enqueue(session, row.id, reason="created")
            session.commit()
            return row.id

    def converge(self, timeout: float = 180) -> None:
        """Reconcile until every instance has settled: Ready, or failed (waiting will not help).

        On the real cluster a rollout takes real seconds while the fleet's clock is the test's:
        the clock must not move on while pods are still starting, or healthy upgrades would
        look timed out.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.worker.run_until_idle(timeout=timeout)
            if not self._rolling_out() or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def _rolling_out(self) -> bool:
        with Session(self.engine) as session:
            phases = {Phase.PENDING, Phase.PROVISIONING, Phase.DELETING}
            rows = session.exec(select(Instance).where(col(Instance.phase).in_(phases))).all()
            return bool(rows)

    def tick(self) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            fleet.tick(session, self.clock.now, check_parameters=self.renderer.resolve_parameters)
            session.commit()

    def step(self, seconds: float = 1.0) -> None:
        """One round: the executor decides, the worker reconciles, the clock moves on."""
        self.tick()
        self.converge()
        self.clock.advance(seconds)

    def run(self, run_id: uuid.UUID) -> FleetRun:
        with Session(self.engine) as session:
            row = session.get(FleetRun, run_id)
            assert row is not None
            return row

    def items(self, run_id: uuid.UUID) -> list[FleetRunItem]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(FleetRunItem)
                    .where(FleetRunItem.run_id == run_id)
                    .order_by(FleetRunItem.position)  # type: ignore[arg-type]
                ).all()
            )

    def get(self, instance_id: uuid.UUID) -> Instance:
        with Session(self.engine) as session:
            row = session.get(Instance, instance_id)
            assert row is not None
            return row

    def live(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return self.cluster.get(kind, name, namespace)

    def clean_up(self) -> None:
        """Delete the namespaces of every instance of this world (not awaited)."""
        with Session(self.engine) as session:
            namespaces = {row.namespace for row in session.exec(select(Instance)).all()}
        core = kubernetes.client.CoreV1Api(self.cluster.api_client)
        for namespace in sorted(namespaces):
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)


def make_world(engine: Engine, cluster: Cluster, *, fresh: bool = True) -> FleetWorld:
    """A world on ``engine``; ``fresh=False`` reuses an existing database (a restart)."""
    if fresh:
        _create_database(engine)
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig), retry=RetryPolicy(poll_interval=0.2))
    registry = TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})
    reconciler = Reconciler(
        engine, server_secret=SERVER_SECRET, targets=registry, settings=fast_settings()
    )
    worker = Worker(engine, reconciler, poll_seconds=0.02, batch_size=50, fleet=False)
    return FleetWorld(engine=engine, cluster=cluster, worker=worker)


def _create_database(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        for version in ("1.0.0", "2.0.0"):
            release = shop_release(version)
            session.add(
                PublishedVersion(
                    service=SERVICE,
                    version=version,
                    release=release.model_dump(mode="json"),
                    digest=release.digest,
                )
            )
        session.add(Target(name="main", kind=TargetKind.KUBERNETES, config={}, is_default=True))
        session.commit()
