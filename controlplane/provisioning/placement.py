"""Target records (where stacks may go) and placement (where one instance goes).

Placement is explicit target (which must exist and allow the service) → the tenant's
default target → the platform's default target. The embedded default is a GitOps
target ``local`` at ``<data_dir>/gitops``, created on first start so that
``controlplane serve`` works with no cluster.

This module must not know about HTTP or how a target writes (``provisioning.targets``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane.db.paging import Page, paginate, str_key
from controlplane.errors import Conflict, ErrorItem, InvalidInput, NotFound, Unavailable
from controlplane.provisioning.models import Target, TargetKind
from controlplane.tenants.models import Tenant

DEFAULT_TARGET = "local"


class TargetNotFound(NotFound):
    """There is no such target."""

    title = "Target not found"
    code = "target_not_found"


class TargetExists(Conflict):
    """A target with this name already exists."""

    title = "Target exists"
    code = "target_exists"


class PlacementRefused(InvalidInput):
    """The instance cannot be placed on the requested target."""

    title = "Placement refused"
    code = "placement_refused"


def get_target(session: Session, name: str) -> Target:
    target = session.exec(select(Target).where(Target.name == name)).first()
    if target is None:
        raise TargetNotFound(f"There is no target {name!r}.")
    return target


def list_targets(session: Session, *, limit: int = 50, cursor: str | None = None) -> Page[Target]:
    statement = select(Target)
    return paginate(
        session, statement, [str_key(col(Target.name), "name")], limit=limit, cursor=cursor
    )


def create_target(
    session: Session,
    *,
    name: str,
    kind: TargetKind,
    config: dict[str, Any],
    kubernetes_version: str = "1.33",
    services: list[str] | None = None,
    is_default: bool = False,
    data_dir: Path | None = None,
) -> Target:
    if session.exec(select(Target.id).where(Target.name == name)).first() is not None:
        raise TargetExists(f"A target named {name!r} already exists.")
    if kind == TargetKind.GITOPS and data_dir is not None:
        _refuse_tree_over_secrets(str(config.get("path") or ""), data_dir)
    if is_default:
        # One default at a time: the new one takes over.
        for other in session.exec(select(Target).where(col(Target.is_default).is_(True))).all():
            other.is_default = False
            session.add(other)
    target = Target(
        name=name,
        kind=kind,
        config=config,
        kubernetes_version=kubernetes_version,
        services=services or [],
        is_default=is_default,
    )
    session.add(target)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise TargetExists(f"A target named {name!r} already exists.") from exc
    return target


def _refuse_tree_over_secrets(path: str, data_dir: Path) -> None:
    """A GitOps tree must not contain the data directory: the server secret and the sealing
    key live there, and a tree is pushed to git (and read by Argo CD or Flux)."""
    if not path:
        return
    tree = Path(path).expanduser().resolve()
    secrets = data_dir.expanduser().resolve()
    if secrets == tree or secrets.is_relative_to(tree):
        raise InvalidInput(
            f"The GitOps path {path!r} contains the control plane's data directory {secrets}.",
            errors=[ErrorItem("config.path", "must not contain the data directory")],
            hint="Choose a folder outside the data directory, or a sub-folder of it such as "
            f"{secrets / 'gitops'}.",
        )


def ensure_default_target(session: Session, data_dir: Path) -> Target:
    """The platform default target; on first start, the embedded GitOps directory."""
    default = session.exec(select(Target).where(col(Target.is_default).is_(True))).first()
    if default is not None:
        return default
    existing = session.exec(select(Target).where(Target.name == DEFAULT_TARGET)).first()
    if existing is not None:
        return existing
    return create_target(
        session,
        name=DEFAULT_TARGET,
        kind=TargetKind.GITOPS,
        config={"path": str((data_dir / "gitops").resolve()), "git_commit": False},
        is_default=True,
    )


def place(session: Session, *, tenant: Tenant, service: str, explicit: str | None) -> Target:
    """The target of a new instance (see the module docstring for the order)."""
    if explicit is not None:
        target = session.exec(select(Target).where(Target.name == explicit)).first()
        if target is None:
            raise PlacementRefused(
                f"There is no target {explicit!r}.",
                errors=[ErrorItem("target", "unknown target")],
                hint="Leave the target out to use the default placement.",
            )
        if target.services and service not in target.services:
            raise PlacementRefused(
                f"Target {explicit!r} does not host {service!r}.",
                errors=[ErrorItem("target", f"hosts only {', '.join(target.services)}")],
            )
        return target
    if tenant.default_target:
        target = session.exec(select(Target).where(Target.name == tenant.default_target)).first()
        if target is not None and (not target.services or service in target.services):
            return target
    default = session.exec(select(Target).where(col(Target.is_default).is_(True))).first()
    if default is None:
        raise Unavailable(
            "No default target is configured, so the instance has nowhere to go.",
            hint="An operator can create one with `cityctl target create --default`.",
        )
    return default
