"""Factories of the provisioning tests: a database, a tiny published service, tenants and
instances, a reconciler and a worker over a GitOps directory or the real cluster.

The tiny service has three objects besides the namespace baseline (a ConfigMap, a Secret
with a generated credential and, in version 1.0.0 only, a ``legacy`` ConfigMap), so that
upgrades prune and rollbacks restore, and everything stays fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, select

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.catalog.models import (
    Plan,
    RequestLimit,
    ServiceRelease,
    ServiceVersion,
    TemplateBundle,
)
from controlplane.catalog.records import PublishedVersion
from controlplane.db.engine import make_engine
from controlplane.db.types import utcnow
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, ReconcileRequest, Target, TargetKind
from controlplane.provisioning.queueing import Backoff
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.sealing import ensure_keypair
from controlplane.provisioning.worker import Worker
from controlplane.tenants.models import Tenant

SERVER_SECRET = b"test-server-secret-0123456789abcdef"
SERVICE = "tiny"

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: {{ params.greeting }}
  size: {{ plan.name }}
"""
SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: credentials
type: Opaque
stringData:
  password: {{ secrets.db_password }}
"""
LEGACY = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: legacy
data:
  note: {{ "kept until 2.0" }}
"""


def plan_of(name: str, replicas: int) -> Plan:
    """A test plan: small costs 10.00 a month, any other 40.00; the same small requests."""
    return Plan(
        name=name,
        title=name.title(),
        monthly_price="10.00" if name == "small" else "40.00",  # type: ignore[arg-type]
        replicas=replicas,
        cpu=RequestLimit(request="100m", limit="500m"),
        memory=RequestLimit(request="128Mi", limit="256Mi"),
        storage="1Gi",
    )


def greeting_schema() -> dict[str, Any]:
    """The parameters of the test services: one ``greeting`` (a fresh copy each call)."""
    return {
        "type": "object",
        "properties": {"greeting": {"type": "string", "default": "hallo"}},
        "additionalProperties": False,
    }


def tiny_release(version: str) -> ServiceRelease:
    files = {"10-config.yaml.j2": CONFIG, "20-secret.yaml.j2": SECRET}
    if version.startswith("1."):
        files["30-legacy.yaml.j2"] = LEGACY
    return ServiceRelease(
        name=SERVICE,
        title="Tiny",
        description="A three-object test service.",
        category="test",
        owner="tests",
        version=ServiceVersion(
            version=version,
            templates=f"tiny/{version}",
            app_version=version,
            images={},
            upgrade_from="" if version.startswith("1.") else ">=1.0.0,<2.0.0",
        ),
        plans=[plan_of("small", 1), plan_of("large", 2)],
        parameters=greeting_schema(),
        bundle=TemplateBundle(files=files),
    )


def publish(session: Session, release: ServiceRelease) -> None:
    session.add(
        PublishedVersion(
            service=release.name,
            version=release.version.version,
            release=release.model_dump(mode="json"),
            digest=release.digest,
        )
    )


@dataclass
class Platform:
    """A database with the tiny service published, one target, and helpers."""

    engine: Engine
    target: str

    def tenant(self, slug: str, nis_code: str | None = None) -> Tenant:
        with Session(self.engine, expire_on_commit=False) as session:
            tenant = Tenant(
                slug=slug, name=slug.title(), nis_code=nis_code or str(10000 + hash(slug) % 89999)
            )
            session.add(tenant)
            session.commit()
            return tenant

    def create(
        self,
        tenant: Tenant,
        name: str,
        *,
        service: str = SERVICE,
        version: str = "1.0.0",
        plan: str = "small",
        parameters: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        with Session(self.engine, expire_on_commit=False) as session:
            instance = Instance(
                tenant_id=tenant.id,
                name=name,
                service=service,
                version=version,
                plan=plan,
                parameters=parameters or {},
                target=self.target,
                namespace=f"{tenant.slug}-{name}",
            )
            session.add(instance)
            session.flush()
            queueing.enqueue(session, instance.id, reason="created")
            session.commit()
            return instance.id

    def change(self, instance_id: uuid.UUID, **desired: Any) -> None:
        """What the API does: record desired state, generation + 1, request due now."""
        with Session(self.engine) as session:
            instance = session.get(Instance, instance_id)
            assert instance is not None
            for key, value in desired.items():
                setattr(instance, key, value)
            instance.generation += 1
            session.add(instance)
            queueing.enqueue(session, instance_id)
            session.commit()

    def delete(self, instance_id: uuid.UUID) -> None:
        self.change(instance_id, deletion_requested=True)

    def get(self, instance_id: uuid.UUID) -> Instance:
        with Session(self.engine) as session:
            instance = session.get(Instance, instance_id)
            assert instance is not None
            return instance

    def make_all_due(self) -> None:
        """Fast-forward to the next resync."""
        with Session(self.engine) as session:
            for request in session.exec(select(ReconcileRequest)).all():
                request.due_at = utcnow() - timedelta(seconds=1)
                session.add(request)
            session.commit()


def fast_settings() -> ReconcileSettings:
    return ReconcileSettings(
        resync_seconds=3600,
        not_ready_seconds=0.05,
        retry=Backoff(base=0.01, cap=0.05),
        failed=Backoff(base=0.01, cap=0.05),
    )


def make_platform(engine: Engine, *, kind: TargetKind, config: dict[str, Any]) -> Platform:
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        publish(session, tiny_release("1.0.0"))
        publish(session, tiny_release("2.0.0"))
        session.add(Target(name="main", kind=kind, config=config, is_default=True))
        session.commit()
    return Platform(engine=engine, target="main")


def make_worker(
    platform: Platform, *, registry: TargetRegistry | None = None, concurrency: int = 1, **kw: Any
) -> Worker:
    reconciler = Reconciler(
        platform.engine,
        server_secret=SERVER_SECRET,
        targets=registry or TargetRegistry(),
        settings=fast_settings(),
    )
    kw.setdefault("poll_seconds", 0.02)
    return Worker(platform.engine, reconciler, concurrency=concurrency, **kw)


@pytest.fixture(scope="session")
def sealing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sealing")
    ensure_keypair(directory, key_size=2048)
    return directory


@pytest.fixture
def gitops_platform(tmp_path: Path, sealing_dir: Path) -> Iterator[Platform]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    config = {"path": str(tmp_path / "tree"), "sealing_cert": str(sealing_dir / "sealing.crt")}
    yield make_platform(engine, kind=TargetKind.GITOPS, config=config)
    engine.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"cp_reconcile_{uuid.uuid4().hex[:10]}"
    admin = make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
