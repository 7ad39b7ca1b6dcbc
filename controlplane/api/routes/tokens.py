"""``/api/v1/tokens``: API tokens (operators only). The token itself is shown once."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from controlplane.api import schemas, views
from controlplane.api.deps import AuditDep, CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS
from controlplane.auth import audit, tokens
from controlplane.auth.models import Role
from controlplane.auth.policy import Action
from controlplane.tenants.services import get_tenant

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=PROBLEMS)


@router.post("", status_code=201, response_model=schemas.TokenCreated)
def create_token(
    body: schemas.TokenCreate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.TokenCreated:
    principal.check(Action.TOKEN_WRITE)
    tenant = get_tenant(session, body.tenant) if body.tenant else None
    issued = tokens.create_token(
        session,
        name=body.name,
        role=Role(body.role),
        tenant_id=tenant.id if tenant else None,
        expires_in_days=body.expires_in_days,
        created_by=context.actor,
    )
    audit.record(
        session,
        context,
        action="token.create",
        resource=f"token:{issued.record.prefix}",
        tenant_id=tenant.id if tenant else None,
        details={"name": body.name, "role": body.role, "expires_in_days": body.expires_in_days},
    )
    session.commit()
    response.headers["Cache-Control"] = "no-store"
    public = views.token(issued.record, tenant.slug if tenant else None)
    return schemas.TokenCreated(**public.model_dump(), token=issued.token)


@router.get("", response_model=schemas.Page[schemas.TokenPublic])
def list_tokens(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.TokenPublic]:
    principal.check(Action.TOKEN_READ)
    page = tokens.list_tokens(session, limit=limit, cursor=cursor)
    slugs = views.slugs(session, (t.tenant_id for t in page.items))
    return schemas.Page(
        items=[views.token(t, slugs.get(t.tenant_id) if t.tenant_id else None) for t in page.items],
        next_cursor=page.next_cursor,
    )


@router.delete("/{token_id}", response_model=schemas.TokenPublic)
def revoke_token(
    token_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> schemas.TokenPublic:
    principal.check(Action.TOKEN_WRITE)
    record = tokens.revoke_token(session, token_id)
    audit.record(
        session,
        context,
        action="token.revoke",
        resource=f"token:{record.prefix}",
        tenant_id=record.tenant_id,
        details={"name": record.name},
    )
    session.commit()
    slugs = views.slugs(session, [record.tenant_id])
    return views.token(record, slugs.get(record.tenant_id) if record.tenant_id else None)
