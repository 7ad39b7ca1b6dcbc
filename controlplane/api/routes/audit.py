"""``/api/v1/audit``: the audit log, newest first; tenant roles see their own tenant's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api import schemas, views
from controlplane.api.deps import CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS, visible_tenant
from controlplane.auth.audit import list_events
from controlplane.auth.policy import Action

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=PROBLEMS)


@router.get("", response_model=schemas.Page[schemas.AuditEventPublic])
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=80)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.AuditEventPublic]:
    principal.check(Action.AUDIT_READ)
    tenant_id = principal.tenant_id if principal.is_tenant_bound else None
    if tenant is not None:
        tenant_id = visible_tenant(session, principal, tenant, Action.AUDIT_READ).id
    page = list_events(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        since=_aware(since),
        until=_aware(until),
        limit=limit,
        cursor=cursor,
    )
    slugs = views.slugs(session, (e.tenant_id for e in page.items))
    return schemas.Page(
        items=[
            views.audit_event(e, slugs.get(e.tenant_id) if e.tenant_id else None)
            for e in page.items
        ],
        next_cursor=page.next_cursor,
    )


def _aware(value: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC (the zone of every stored time).
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
