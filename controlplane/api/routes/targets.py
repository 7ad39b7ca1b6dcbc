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
    target = placement.create_target(
        session,
        name=body.name,
        kind=kind,
        config=config,
        kubernetes_version=body.kubernetes_version,
        services=body.services,
        is_default=body.is_default,
        data_dir=settings.data_dir,
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
