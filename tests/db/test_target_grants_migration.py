"""0007: existing tenants keep every target they use, so nothing breaks on upgrade.

Each tenant is granted the targets of its live instances, its own default target and the
platform default of the day; a target no tenant uses stays ungranted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane import migrations
from controlplane.provisioning.models import Instance, Target, TargetKind
from controlplane.tenants.models import Tenant
from tests.db.conftest import engine_at, insert_at_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_at(request, tmp_path, "0006_tenant_names") as engine:
        yield engine


def _instance(tenant: Tenant, name: str, target: str, **fields: object) -> Instance:
    return Instance(
        tenant_id=tenant.id,
        name=name,
        service="demo",
        version="1.0.0",
        plan="small",
        target=target,
        namespace=f"{tenant.slug}-{name}",
        **fields,
    )


def test_tenants_keep_the_targets_they_use(engine_at_0006: Engine) -> None:
    engine = engine_at_0006
    gent = Tenant(slug="gent", name="Gent", nis_code="44021", default_target="prod-gent")
    brugge = Tenant(slug="brugge", name="Brugge", nis_code="31005")
    with Session(engine) as session:
        insert_at_schema(session, gent)
        insert_at_schema(session, brugge)
        for name, is_default in (
            ("local", True),
            ("prod-gent", False),
            ("shared", False),
            ("old", False),
            ("unused", False),
        ):
            insert_at_schema(
                session, Target(name=name, kind=TargetKind.GITOPS, config={}, is_default=is_default)
            )
        session.flush()
        insert_at_schema(session, _instance(brugge, "web", "shared"))
        # Deleted instances grant nothing.
        insert_at_schema(session, _instance(brugge, "gone", "old", deleted_at=datetime.now(UTC)))
        session.commit()

    migrations.upgrade(engine)

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT tenants.slug, targets.name, target_grants.granted_by FROM target_grants"
                " JOIN tenants ON tenants.id = target_grants.tenant_id"
                " JOIN targets ON targets.id = target_grants.target_id"
            )
        ).all()
    assert sorted((slug, target) for slug, target, _ in rows) == [
        ("brugge", "local"),
        ("brugge", "shared"),
        ("gent", "local"),
        ("gent", "prod-gent"),
    ]
    assert {by for _, _, by in rows} == {"migration 0007_target_grants"}

    migrations.downgrade(engine, "0006_tenant_names")
    assert "target_grants" not in sa.inspect(engine).get_table_names()
