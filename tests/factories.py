"""Factories of the test suite, in one place: databases, tenants, tokens, releases, instances.

Databases: a migrated template is made once per test session (SQLite: a file that is
copied; PostgreSQL: a template database that is cloned with ``CREATE DATABASE … TEMPLATE``),
so every test gets a fresh, fully migrated database cheaply. PostgreSQL databases are named
``cp_test_<pid>_<random>`` and dropped at the end; the server URL comes from
``CONTROLPLANE_TEST_POSTGRES_URL`` (default: the local server's ``test`` database).
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from controlplane import migrations
from controlplane.auth import tokens
from controlplane.auth.models import Role
from controlplane.catalog.models import (
    Plan,
    RequestLimit,
    ServiceRelease,
    ServiceVersion,
    TemplateBundle,
    VersionStatus,
)
from controlplane.catalog.publishing import publish_release
from controlplane.db.engine import make_engine
from controlplane.provisioning.instances import create_instance
from controlplane.provisioning.models import Instance
from controlplane.provisioning.placement import ensure_default_target
from controlplane.tenants.models import Tenant
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV

POSTGRES_URL = os.environ.get(
    "CONTROLPLANE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MUNICIPALITIES_CSV = FLEMISH_MUNICIPALITIES_CSV


# -- databases ------------------------------------------------------------------------------


def _admin_engine() -> Engine:
    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _database_name(kind: str) -> str:
    return f"cp_{kind}_{os.getpid()}_{secrets.token_hex(4)}"


def _url_for(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


class PostgresTemplate:
    """A migrated template database; :meth:`clone` gives a fresh copy per test."""

    def __init__(self) -> None:
        self.admin = _admin_engine()
        self.name = _database_name("tmpl")
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        engine = create_engine(_url_for(self.name))
        try:
            migrations.upgrade(engine)
        finally:
            engine.dispose()

    @contextmanager
    def clone(self) -> Iterator[str]:
        name = _database_name("test")
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"'))
        try:
            yield _url_for(name)
        finally:
            with self.admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    @contextmanager
    def empty(self) -> Iterator[str]:
        name = _database_name("empty")
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield _url_for(name)
        finally:
            with self.admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop(self) -> None:
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


class SqliteTemplate:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "template.db"
        engine = make_engine(f"sqlite:///{self.path}")
        try:
            migrations.upgrade(engine)
        finally:
            engine.dispose()

    def clone(self, folder: Path) -> str:
        target = folder / f"cp-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"


# -- domain objects ------------------------------------------------------------------------

_counter = iter(range(10_000, 99_999))


def make_tenant(session: Session, slug: str | None = None, **fields: Any) -> Tenant:
    n = next(_counter)
    tenant = Tenant(
        slug=slug or f"gemeente-{n}",
        name=fields.pop("name", f"Gemeente {n}"),
        nis_code=fields.pop("nis_code", f"{n:05d}"),
        inhabitants=fields.pop("inhabitants", 10_000),
        inhabitants_year=fields.pop("inhabitants_year", 2020),
        **fields,
    )
    session.add(tenant)
    session.flush()
    return tenant


def make_token(
    session: Session,
    role: Role = Role.OPERATOR,
    tenant: Tenant | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> str:
    issued = tokens.create_token(
        session,
        name=name or f"{role}-test",
        role=role,
        tenant_id=tenant.id if tenant else None,
        **kwargs,
    )
    return issued.token


DEMO_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hostname": {"type": "string", "maxLength": 253, "default": ""},
        "replicas_hint": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "smtp": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
        },
    },
}


def demo_release(
    version: str = "1.0.0",
    *,
    name: str = "demo",
    upgrade_from: str = "",
    status: VersionStatus = VersionStatus.ACTIVE,
    template_text: str = "kind: ConfigMap\n",
) -> ServiceRelease:
    """A small release, independent of the shipped catalogue."""

    def plan(plan_name: str, price: str, replicas: int) -> Plan:
        return Plan(
            name=plan_name,
            title=plan_name.title(),
            monthly_price=price,  # type: ignore[arg-type]
            replicas=replicas,
            cpu=RequestLimit(request="100m", limit="500m"),
            memory=RequestLimit(request="128Mi", limit="256Mi"),
            storage="1Gi",
        )

    return ServiceRelease(
        name=name,
        title="Demo",
        description="A demo service for tests.",
        category="test",
        owner="tests@city-platform.be",
        version=ServiceVersion(
            version=version,
            templates=f"{name}/{version}",
            app_version=version,
            images={"web": f"registry.example/demo:{version}"},
            upgrade_from=upgrade_from,
            status=status,
        ),
        plans=[plan("small", "10.00", 1), plan("large", "40.00", 3)],
        parameters=DEMO_SCHEMA,
        bundle=TemplateBundle(files={"00-config.yaml.j2": template_text}),
    )


def publish_demo(session: Session, *versions: str) -> None:
    previous = ""
    for version in versions or ("1.0.0",):
        upgrade_from = f">={previous}" if previous else ""
        publish_release(session, demo_release(version, upgrade_from=upgrade_from))
        previous = version


def accept_parameters(release: ServiceRelease, parameters: Any) -> dict[str, Any]:
    return dict(parameters)


def make_instance(
    session: Session,
    tenant: Tenant,
    name: str = "demo",
    *,
    service: str = "demo",
    plan: str = "small",
    parameters: dict[str, Any] | None = None,
    data_dir: Path = Path("/tmp/cp-tests"),
) -> Instance:
    ensure_default_target(session, data_dir)
    return create_instance(
        session,
        tenant=tenant,
        name=name,
        service=service,
        version=None,
        plan=plan,
        parameters=parameters or {},
        target=None,
        check_parameters=accept_parameters,
    ).instance


# -- fixtures (imported by the conftest of each test package) ------------------------------

import pytest  # noqa: E402


def postgres_enabled() -> bool:
    return os.environ.get("CONTROLPLANE_TEST_POSTGRES", "on") != "off"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate]:
    if not postgres_enabled():
        pytest.skip("CONTROLPLANE_TEST_POSTGRES=off")
    template = PostgresTemplate()
    try:
        yield template
    finally:
        template.drop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database per test, on each backend."""
    if request.param == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        yield template.clone(tmp_path)
        return
    pg: PostgresTemplate = request.getfixturevalue("postgres_template")
    with pg.clone() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port; yield its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
