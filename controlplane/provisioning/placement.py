"""Target records (where stacks may go) and placement (where one instance goes).

Placement is explicit target (which must be granted to the tenant and allow the service) →
the tenant's default target (if granted) → the platform's default target. The embedded
default is a GitOps target ``local`` at ``<data_dir>/gitops``, created on first start so
that ``controlplane serve`` works with no cluster.

Operators grant targets per tenant (:class:`TargetGrant`); the platform default target
counts as granted to every tenant, since it is where their instances go when they name
none. For a tenant role a target that is not granted does not exist: naming it answers
exactly as naming a target that does not exist, so tenants cannot learn which clusters the
platform has. Operators get the explanation.

This module must not know about HTTP or how a target writes (``provisioning.targets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane.db.paging import Page, paginate, str_key
from controlplane.errors import Conflict, ErrorItem, InvalidInput, NotFound, Unavailable
from controlplane.provisioning.models import Instance, Target, TargetGrant, TargetKind
from controlplane.rendering.target_ref import check_backup_config, check_capabilities
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
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


class TargetInUse(Conflict):
    """The tenant still has instances on this target."""

    title = "Target in use"
    code = "target_in_use"


@dataclass(frozen=True)
class Grant:
    """A tenant may place instances on a target."""

    target: str
    tenant: str
    granted_by: str
    granted_at: datetime


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
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    services: list[str] | None = None,
    capabilities: list[str] | None = None,
    is_default: bool = False,
    data_dir: Path | None = None,
    gitops_root: Path | None = None,
) -> Target:
    """Record a target. ``config`` must already be checked for what only the target kind
    knows (``provisioning.targets.building.check_config``); here: the GitOps path must keep
    out of the data directory and (with ``gitops_root``) lie under the root, and is stored
    resolved. Kubeconfig paths are stored absolute too: a relative one is taken from the
    server's working directory when the target is created, not whenever a worker opens it."""
    if session.exec(select(Target.id).where(Target.name == name)).first() is not None:
        raise TargetExists(f"A target named {name!r} already exists.")
    capabilities = check_capabilities(capabilities or [])
    check_backup_config(config, capabilities)
    config = dict(config)
    for key in ("kubeconfig", "observe_kubeconfig", "backup_credentials_file"):
        if isinstance(config.get(key), str) and config[key]:
            config[key] = str(Path(config[key]).absolute())
    if kind == TargetKind.GITOPS:
        path = str(config.get("path") or "")
        if gitops_root is not None and path:
            # A relative path is a folder of the root (``--path gent`` = ``<root>/gent``).
            config["path"] = str(_resolve_tree(path, gitops_root))
        if data_dir is not None:
            _refuse_tree_over_secrets(path, config["path"] if path else "", data_dir)
        if gitops_root is not None and path:
            _refuse_tree_outside_root(path, Path(config["path"]), gitops_root)
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
        capabilities=capabilities,
        is_default=is_default,
    )
    session.add(target)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise TargetExists(f"A target named {name!r} already exists.") from exc
    return target


def _resolve_tree(path: str, base: Path) -> Path:
    """``path`` with ``~``, ``..`` and symbolic links resolved (relative paths under ``base``)."""
    try:
        return (base / Path(path).expanduser()).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long, ~nobody
        raise InvalidInput(
            f"The GitOps path {path!r} cannot be resolved on the server.",
            errors=[ErrorItem("config.path", "cannot be resolved (symlink loop or bad name)")],
            hint="Give a plain folder under the GitOps root.",
        ) from exc


def _refuse_tree_over_secrets(path: str, resolved: str, data_dir: Path) -> None:
    """A GitOps tree must not contain the data directory: the server secret and the sealing
    key live there, and a tree is pushed to git (and read by Argo CD or Flux)."""
    if not path:
        return
    tree = _resolve_tree(resolved, Path.cwd())
    secrets = data_dir.expanduser().resolve()
    if secrets == tree or secrets.is_relative_to(tree):
        raise InvalidInput(
            f"The GitOps path {path!r} contains the control plane's data directory {secrets}.",
            errors=[ErrorItem("config.path", "must not contain the data directory")],
            hint="Choose a folder outside the data directory, or a sub-folder of it such as "
            f"{secrets / 'gitops'}.",
        )


def _refuse_tree_outside_root(path: str, resolved: Path, root: Path) -> None:
    """The reconciler writes and deletes files in a GitOps tree as the server's user: an
    API call must not be able to aim it at ``/etc/cron.d`` or a home directory. ``..`` and
    symbolic links are resolved before the check; the resolved path is not echoed."""
    top = root.expanduser().resolve()
    if resolved == top or resolved.is_relative_to(top):
        return
    raise InvalidInput(
        f"The GitOps path {path!r} is outside the GitOps root of this control plane.",
        errors=[ErrorItem("config.path", "must lie under the GitOps root (symlinks followed)")],
        hint=f"Choose a folder under {top} (a relative path such as `gent` is taken under it);"
        " the root is the server setting CONTROLPLANE_GITOPS_ROOT.",
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


def place(
    session: Session, *, tenant: Tenant, service: str, explicit: str | None, explain: bool = False
) -> Target:
    """The target of a new instance (see the module docstring for the order).

    ``explain``: the caller may know which targets exist (operators); tenant roles get the
    same answer for a target that is not granted as for one that does not exist.
    """
    if explicit is not None:
        target = session.exec(select(Target).where(Target.name == explicit)).first()
        if target is None or not is_granted(session, tenant=tenant, target=target):
            raise _no_such_target(explicit, tenant, exists=target is not None, explain=explain)
        if target.services and service not in target.services:
            raise PlacementRefused(
                f"Target {explicit!r} does not host {service!r}.",
                errors=[ErrorItem("target", f"hosts only {', '.join(target.services)}")],
            )
        return target
    if tenant.default_target:
        target = session.exec(select(Target).where(Target.name == tenant.default_target)).first()
        if (
            target is not None
            and (not target.services or service in target.services)
            and is_granted(session, tenant=tenant, target=target)
        ):
            return target
    default = session.exec(select(Target).where(col(Target.is_default).is_(True))).first()
    if default is None:
        raise Unavailable(
            "No default target is configured, so the instance has nowhere to go.",
            hint="An operator can create one with `cityctl target create --default`.",
        )
    return default


def _no_such_target(name: str, tenant: Tenant, *, exists: bool, explain: bool) -> PlacementRefused:
    if explain and exists:
        return PlacementRefused(
            f"Target {name!r} is not granted to tenant {tenant.slug!r}.",
            errors=[ErrorItem("target", "not granted to this tenant")],
            hint=f"Grant it with `cityctl target grant {name} {tenant.slug}`, or leave the "
            "target out to use the default placement.",
        )
    # Tenant roles: the same words whether the target exists elsewhere or not at all.
    return PlacementRefused(
        f"There is no target {name!r}.",
        errors=[ErrorItem("target", "unknown target")],
        hint="Leave the target out to use the default placement."
        + (" `cityctl target list` shows the targets." if explain else ""),
    )


# -- grants -------------------------------------------------------------------------------


def is_granted(session: Session, *, tenant: Tenant, target: Target) -> bool:
    if target.is_default:
        return True
    return session.get(TargetGrant, (target.id, tenant.id)) is not None


def grant_target(
    session: Session, *, target: Target, tenant: Tenant, by: str
) -> tuple[Grant, bool]:
    """Allow ``tenant`` to place instances on ``target``; the bool is False when the grant
    already existed (granting is idempotent)."""
    existing = session.get(TargetGrant, (target.id, tenant.id))
    if existing is not None:
        return _as_grant(existing, target, tenant), False
    row = TargetGrant(target_id=target.id, tenant_id=tenant.id, granted_by=by)
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # A concurrent grant of the same pair won: the outcome is the same.
        won = session.get(TargetGrant, (target.id, tenant.id))
        if won is None:
            raise
        return _as_grant(won, target, tenant), False
    return _as_grant(row, target, tenant), True


def _as_grant(row: TargetGrant, target: Target, tenant: Tenant) -> Grant:
    return Grant(
        target=target.name, tenant=tenant.slug, granted_by=row.granted_by, granted_at=row.granted_at
    )


def revoke_target(session: Session, *, target: Target, tenant: Tenant) -> bool:
    """Take ``target`` away from ``tenant``; False when it was not granted.

    Refused while the tenant's live instances use the target (they would be stranded: the
    reconciler keeps writing there, but nobody could place a new one) or while it is the
    tenant's default target or the platform default (which every tenant may use)."""
    if target.is_default:
        raise TargetInUse(
            f"Target {target.name!r} is the platform default, which every tenant may use.",
            errors=[ErrorItem("target", "is the platform default")],
            hint="Make another target the default first (`cityctl target create --default`).",
        )
    users = session.exec(
        select(Instance.name)
        .where(
            Instance.tenant_id == tenant.id,
            Instance.target == target.name,
            col(Instance.deleted_at).is_(None),
        )
        .order_by(col(Instance.name))
    ).all()
    if users:
        raise TargetInUse(
            f"Tenant {tenant.slug!r} has {len(users)} instance(s) on target {target.name!r}: "
            f"{', '.join(users)}.",
            errors=[ErrorItem("target", "used by live instances of the tenant")],
            hint=f"Delete them first (`cityctl instance delete NAME --tenant {tenant.slug}`).",
            extra={"instances": list(users)},
        )
    if tenant.default_target == target.name:
        raise TargetInUse(
            f"Target {target.name!r} is the default target of tenant {tenant.slug!r}.",
            errors=[ErrorItem("target", "is the tenant's default target")],
            hint=f"Change it first (`cityctl tenant update {tenant.slug} --default-target …`).",
        )
    grant = session.get(TargetGrant, (target.id, tenant.id))
    if grant is None:
        return False
    session.delete(grant)
    session.flush()
    return True


def list_grants(
    session: Session, target: Target, *, limit: int = 50, cursor: str | None = None
) -> Page[Grant]:
    """The tenants granted ``target`` explicitly, by slug."""
    statement = (
        select(Tenant)
        .join(TargetGrant, col(TargetGrant.tenant_id) == col(Tenant.id))
        .where(TargetGrant.target_id == target.id)
    )
    page = paginate(
        session, statement, [str_key(col(Tenant.slug), "slug")], limit=limit, cursor=cursor
    )
    grants = {
        g.tenant_id: g
        for g in session.exec(
            select(TargetGrant).where(
                TargetGrant.target_id == target.id,
                col(TargetGrant.tenant_id).in_([t.id for t in page.items]),
            )
        ).all()
    }
    items = [_as_grant(grants[t.id], target, t) for t in page.items]
    return Page(items=items, next_cursor=page.next_cursor)
