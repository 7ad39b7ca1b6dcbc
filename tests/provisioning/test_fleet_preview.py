"""The plan's preview lists exactly the objects an upgrade changes (shipped keycloak
25.0.6 → 26.0.7), and the plan selects, excludes and orders instances as documented."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

import controlplane.tables  # noqa: F401 - registers every table
from controlplane.auth.audit import AuditContext
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import publish_release
from controlplane.db.engine import make_engine
from controlplane.provisioning import fleet
from controlplane.provisioning.models import Instance, Target, TargetKind
from controlplane.rendering import Renderer
from controlplane.rendering.naming import object_id
from controlplane.rendering.renderer import InstanceRef, TenantRef
from controlplane.tenants.models import Tenant, TenantStatus

SECRET = b"preview-test-secret"
OPERATOR = AuditContext(actor="operator-test")
RENDERER = Renderer(server_secret=SECRET, kubernetes_version="1.33")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    SQLModel.metadata.create_all(engine)
    catalog = load_catalog()
    with Session(engine) as session:
        for version in ("25.0.6", "26.0.7"):
            publish_release(session, catalog.release("keycloak", version))
        session.add(Target(name="main", kind=TargetKind.GITOPS, config={}, is_default=True))
        session.commit()
    yield engine
    engine.dispose()


def _tenant(session: Session, slug: str, nis: str, **fields: object) -> Tenant:
    tenant = Tenant(slug=slug, name=slug.title(), nis_code=nis, **fields)  # type: ignore[arg-type]
    session.add(tenant)
    session.flush()
    return tenant


def _instance(
    session: Session, tenant: Tenant, name: str, version: str, **fields: object
) -> Instance:
    instance = Instance(
        tenant_id=tenant.id,
        name=name,
        service="keycloak",
        version=version,
        plan=str(fields.pop("plan", "small")),
        parameters=dict(fields.pop("parameters", {})),  # type: ignore[call-overload]
        target="main",
        namespace=f"{tenant.slug}-{name}",
        **fields,
    )
    session.add(instance)
    session.flush()
    return instance


def _plan(session: Session, **overrides: object) -> fleet.FleetPlan:
    request = fleet.PlanRequest(
        **{"service": "keycloak", "from_range": ">=25.0.0,<26.0.0", "to_version": "26.0.7"}
        | overrides  # type: ignore[arg-type]
    )
    return fleet.create_plan(
        session, request=request, renderer_for=lambda _v: RENDERER, context=OPERATOR
    )


def test_preview_lists_exactly_the_objects_that_change(engine: Engine) -> None:
    catalog = load_catalog()
    with Session(engine) as session:
        gent = _tenant(session, "gent", "44021")
        sample = _instance(session, gent, "login", "25.0.6")
        plan = _plan(session)
        session.commit()
        (item,) = fleet.plan_items(session, plan)

        # Independently: render both versions with the instance's inputs and compare.
        refs = {
            "plan": "small",
            "tenant": TenantRef(slug="gent", name="Gent", nis_code="44021"),
            "instance": InstanceRef(
                name="login",
                id=str(sample.id),
                namespace=sample.namespace,
                hostname=sample.hostname,
            ),
            "parameters": {},
        }
        old = RENDERER.render(catalog.release("keycloak", "25.0.6"), **refs)  # type: ignore[arg-type]
        new = RENDERER.render(catalog.release("keycloak", "26.0.7"), **refs)  # type: ignore[arg-type]
        before = {object_id(o): o for o in old.objects}
        after = {object_id(o): o for o in new.objects}
        expected_changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
        assert item.changes == {
            "added": sorted(after.keys() - before.keys()),
            "changed": expected_changed,
            "removed": sorted(before.keys() - after.keys()),
        }
        assert expected_changed  # the new version really changes objects
        # The images changed, so the workloads are among the changed objects.
        workloads = [
            k for k in expected_changed if k.split("/")[-2] in ("Deployment", "StatefulSet")
        ]
        assert workloads

        fresh = fleet.preview_instance(session, sample, "26.0.7", renderer_for=lambda _v: RENDERER)
        assert fresh.as_dict() == item.changes


def test_plan_selects_orders_and_excludes(engine: Engine) -> None:
    with Session(engine) as session:
        a = _tenant(session, "aalst", "41002")
        b = _tenant(session, "brugge", "31005")
        c = _tenant(session, "charleroi", "52011", status=TenantStatus.SUSPENDED)
        _instance(session, b, "zeta", "25.0.6")
        _instance(session, b, "alpha", "25.0.6")
        _instance(session, a, "one", "25.0.6")
        _instance(session, a, "new", "26.0.7")  # already there: not selected
        _instance(session, c, "frozen", "25.0.6")  # tenant suspended: excluded
        _instance(session, a, "gone", "25.0.6", deletion_requested=True)  # being deleted
        plan = _plan(session, wave_size=2)
        items = fleet.plan_items(session, plan)
        assert [(i.tenant, i.instance, i.wave) for i in items] == [
            ("aalst", "one", 0),
            ("brugge", "alpha", 0),
            ("brugge", "zeta", 1),
        ]
        assert plan.excluded == [
            {"tenant": "charleroi", "instance": "frozen", "reason": "tenant is suspended"}
        ]
        only_b = _plan(session, tenants=["brugge"])
        assert {i.tenant for i in fleet.plan_items(session, only_b)} == {"brugge"}


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"to_version": "99.0.0"}, "to"),
        ({"from_range": ">=25.0.0,,"}, "from"),
        ({"failure_threshold": "many"}, "failure_threshold"),
        ({"failure_threshold": "0"}, "failure_threshold"),
        ({"wave_size": 0}, "wave_size"),
        ({"tenants": ["nowhere"]}, "tenants[0]"),
    ],
)
def test_invalid_plans_name_the_field(
    engine: Engine, overrides: dict[str, object], location: str
) -> None:
    with Session(engine) as session, pytest.raises(fleet.FleetPlanInvalid) as caught:
        _plan(session, **overrides)
    assert location in [e.location for e in caught.value.errors]


def test_threshold_counts_and_percentages() -> None:
    assert fleet.threshold_limit("1", 60) == 1
    assert fleet.threshold_limit("3", 60) == 3
    assert fleet.threshold_limit("10%", 60) == 6
    assert fleet.threshold_limit("10%", 5) == 1
    assert fleet.threshold_limit("12.5%", 16) == 2


def test_unknown_plan_and_run() -> None:
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        with pytest.raises(fleet.FleetPlanNotFound):
            fleet.get_plan(session, uuid.uuid4())
        with pytest.raises(fleet.FleetRunNotFound):
            fleet.get_run(session, uuid.uuid4())
