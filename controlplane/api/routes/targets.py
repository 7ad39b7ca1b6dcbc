"""``/api/v1/targets``: where stacks go (clusters and GitOps directories)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from controlplane.api import schemas, views
from controlplane.api.deps import (
    AuditDep,
    CursorQuery,
    LimitQuery,
    PrincipalDep,
    SessionDep,
    SettingsDep,
)
from controlplane.api.routes.common import PROBLEMS
from controlplane.auth import audit
from controlplane.auth.policy import Action
from controlplane.provisioning import placement
from controlplane.provisioning.models import TargetKind
from controlplane.provisioning.targets.building import check_config
from controlplane.tenants.services import get_tenant

router = APIRouter(prefix="/api/v1/targets", tags=["targets"], responses=PROBLEMS)


@router.post("", status_code=201, response_model=schemas.TargetPublic)
def create_target(
    body: schemas.TargetCreate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.TargetPublic:
    principal.check(Action.TARGET_WRITE)
    config = body.config.model_dump(mode="json")
    kind = TargetKind(config.pop("kind"))
    for optional in (
        "observe_kubeconfig",
        "observe_context",
        "tls_issuer",
        "backup_destination",
        "backup_endpoint",
        "backup_credentials_file",
        "cnpg_operator_namespace",
        "apiserver_cidrs",
    ):
        if config.get(optional, "") is None:
            del config[optional]  # stored only when given
    check_config(kind, config)
    target = placement.create_target(
        session,
        name=body.name,
        kind=kind,
        config=config,
        kubernetes_version=body.kubernetes_version,
        services=body.services,
        capabilities=body.capabilities,
        is_default=body.is_default,
        data_dir=settings.data_dir,
        gitops_root=settings.resolved_gitops_root(),
    )
    audit.record(
        session,
        context,
        action="target.create",
        resource=f"target:{target.name}",
        details=body.model_dump(mode="json"),
    )
    session.commit()
    response.headers["Location"] = f"/api/v1/targets/{target.name}"
    return views.target(target)


@router.get("", response_model=schemas.Page[schemas.TargetPublic])
def list_targets(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.TargetPublic]:
    principal.check(Action.TARGET_READ)
    page = placement.list_targets(session, limit=limit, cursor=cursor)
    return schemas.Page(items=[views.target(t) for t in page.items], next_cursor=page.next_cursor)


@router.get("/{name}", response_model=schemas.TargetPublic)
def show_target(
    name: Annotated[str, Path(max_length=63)], session: SessionDep, principal: PrincipalDep
) -> schemas.TargetPublic:
    principal.check(Action.TARGET_READ)
    return views.target(placement.get_target(session, name))


# -- grants: which tenants may place instances on a target (operators decide) -------------

TargetName = Annotated[str, Path(max_length=63)]
TenantSlug = Annotated[str, Path(max_length=40)]


def _grant(grant: placement.Grant) -> schemas.TargetGrantPublic:
    return schemas.TargetGrantPublic(
        target=grant.target,
        tenant=grant.tenant,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
    )


@router.get("/{name}/tenants", response_model=schemas.Page[schemas.TargetGrantPublic])
def list_grants(
    name: TargetName,
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.TargetGrantPublic]:
    """The tenants granted this target explicitly (the default target is open to all)."""
    principal.check(Action.TARGET_READ)
    target = placement.get_target(session, name)
    page = placement.list_grants(session, target, limit=limit, cursor=cursor)
    return schemas.Page(items=[_grant(g) for g in page.items], next_cursor=page.next_cursor)


@router.post(
    "/{name}/tenants/{tenant}",
    status_code=201,
    response_model=schemas.TargetGrantPublic,
    responses={200: {"description": "The tenant already had the grant."}},
)
def grant_target(
    name: TargetName,
    tenant: TenantSlug,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.TargetGrantPublic:
    """Allow the tenant to place instances on the target (201; 200 if it already could)."""
    principal.check(Action.TARGET_WRITE)
    target = placement.get_target(session, name)
    row = get_tenant(session, tenant)
    grant, created = placement.grant_target(session, target=target, tenant=row, by=context.actor)
    if created:
        audit.record(
            session,
            context,
            action="target.grant",
            resource=f"target:{target.name}",
            tenant_id=row.id,
            details={"target": target.name, "tenant": row.slug},
        )
    else:
        response.status_code = 200
    session.commit()
    return _grant(grant)


@router.delete("/{name}/tenants/{tenant}", status_code=204)
def revoke_target(
    name: TargetName,
    tenant: TenantSlug,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> Response:
    """Take the target away from the tenant (idempotent); 409 while its instances use it."""
    principal.check(Action.TARGET_WRITE)
    target = placement.get_target(session, name)
    row = get_tenant(session, tenant)
    if placement.revoke_target(session, target=target, tenant=row):
        audit.record(
            session,
            context,
            action="target.revoke",
            resource=f"target:{target.name}",
            tenant_id=row.id,
            details={"target": target.name, "tenant": row.slug},
        )
    session.commit()
    return Response(status_code=204)
