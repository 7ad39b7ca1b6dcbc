"""Fixtures of the API suite: every test runs on SQLite and on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.settings import Settings
from controlplane.tenants.models import TenantDomain
from tests.factories import (  # noqa: F401 (fixtures)
    database_url,
    engine,
    make_tenant,
    make_token,
    postgres_template,
    publish_demo,
    sqlite_template,
)


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> FastAPI:  # noqa: F811
    settings = Settings(data_dir=tmp_path, server_secret="test-secret", embedded_worker=False)  # type: ignore[arg-type]
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@dataclass
class World:
    """Two tenants and a token for every role (plus a tenant-admin of the other tenant)."""

    tokens: dict[str, str] = field(default_factory=dict)
    gent: str = "gent"
    brugge: str = "brugge"

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def world(engine: Engine, client: TestClient) -> World:  # noqa: F811
    w = World()
    with Session(engine) as session:
        gent = make_tenant(session, "gent", name="Gent", nis_code="44021")
        brugge = make_tenant(session, "brugge", name="Brugge", nis_code="31005")
        session.add(TenantDomain(tenant_id=gent.id, domain="gent.be", granted_by="tests"))
        w.tokens["operator"] = make_token(session, Role.OPERATOR)
        w.tokens["finance"] = make_token(session, Role.FINANCE)
        w.tokens["tenant-admin"] = make_token(session, Role.TENANT_ADMIN, gent)
        w.tokens["tenant-viewer"] = make_token(session, Role.TENANT_VIEWER, gent)
        w.tokens["other-admin"] = make_token(session, Role.TENANT_ADMIN, brugge)
        publish_demo(session, "1.0.0", "1.1.0")
        session.commit()
    return w
