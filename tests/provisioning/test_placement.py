"""Placement honours grants at every step, and GitOps paths are resolved before the checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from controlplane.db.engine import make_engine
from controlplane.errors import InvalidInput, Unavailable
from controlplane.provisioning import placement
from controlplane.provisioning.models import Target, TargetKind
from controlplane.tables import metadata
from controlplane.tenants.models import Tenant


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'placement.db'}")
    metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _target(session: Session, name: str, *, is_default: bool = False) -> Target:
    target = Target(name=name, kind=TargetKind.GITOPS, config={}, is_default=is_default)
    session.add(target)
    session.flush()
    return target


def _tenant(session: Session, default_target: str | None = None) -> Tenant:
    tenant = Tenant(slug="gent", name="Gent", nis_code="44021", default_target=default_target)
    session.add(tenant)
    session.flush()
    return tenant


def test_an_ungranted_tenant_default_falls_back_to_the_platform_default(
    session: Session,
) -> None:
    _target(session, "local", is_default=True)
    prod = _target(session, "prod-gent")
    tenant = _tenant(session, default_target="prod-gent")

    assert placement.place(session, tenant=tenant, service="demo", explicit=None).name == "local"
    placement.grant_target(session, target=prod, tenant=tenant, by="test")
    placed = placement.place(session, tenant=tenant, service="demo", explicit=None)
    assert placed.name == "prod-gent"


def test_grants_are_idempotent_and_revoke_refuses_the_tenant_default(session: Session) -> None:
    _target(session, "local", is_default=True)
    prod = _target(session, "prod-gent")
    tenant = _tenant(session, default_target="prod-gent")
    first, created = placement.grant_target(session, target=prod, tenant=tenant, by="a")
    again, created_again = placement.grant_target(session, target=prod, tenant=tenant, by="b")
    assert (created, created_again) == (True, False)
    assert again.granted_by == first.granted_by == "a"
    with pytest.raises(placement.TargetInUse, match="default target of tenant"):
        placement.revoke_target(session, target=prod, tenant=tenant)
    tenant.default_target = None
    assert placement.revoke_target(session, target=prod, tenant=tenant) is True
    assert placement.revoke_target(session, target=prod, tenant=tenant) is False


def test_no_default_target_is_unavailable(session: Session) -> None:
    tenant = _tenant(session)
    with pytest.raises(Unavailable):
        placement.place(session, tenant=tenant, service="demo", explicit=None)


def test_a_symlink_loop_is_a_clear_error(session: Session, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(InvalidInput) as refused:
        placement.create_target(
            session,
            name="loop",
            kind=TargetKind.GITOPS,
            config={"path": "a/x"},
            gitops_root=root,
        )
    assert [e.location for e in refused.value.errors] == ["config.path"]


def test_the_root_itself_and_its_folders_are_allowed(session: Session, tmp_path: Path) -> None:
    root = tmp_path / "root"
    created = placement.create_target(
        session, name="top", kind=TargetKind.GITOPS, config={"path": str(root)}, gitops_root=root
    )
    assert created.config["path"] == str(root.resolve())
    nested = placement.create_target(
        session, name="nested", kind=TargetKind.GITOPS, config={"path": "a/b"}, gitops_root=root
    )
    assert nested.config["path"] == str((root / "a" / "b").resolve())
