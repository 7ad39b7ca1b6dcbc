"""Pieces shared by the routers: documented problem answers and tenant visibility."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from controlplane.api.schemas import Problem
from controlplane.auth.policy import Action, Principal
from controlplane.tenants.errors import TenantNotFound
from controlplane.tenants.models import Tenant
from controlplane.tenants.services import get_tenant

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

#: Problem answers every authenticated route may give (documented in the OpenAPI).
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {**_PROBLEM, "description": description}
    for status, description in {
        401: "No valid bearer token.",
        403: "The role may not do this.",
        404: "Not found (or not visible to this token).",
        409: "Conflicts with the current state.",
        412: "If-Match does not match the current ETag.",
        422: "The request is not valid.",
        503: "The database is not available.",
    }.items()
}


def visible_tenant(session: Session, principal: Principal, slug: str, action: Action) -> Tenant:
    """The tenant, if this principal may see it and do ``action``; another tenant is 404."""
    tenant = get_tenant(session, slug)
    if not principal.sees_tenant(tenant.id):
        raise TenantNotFound(f"There is no tenant {slug!r}.")
    principal.check(action, tenant_id=tenant.id)
    return tenant
