"""``/api/v1/tenants``: municipalities and their master data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from controlplane.api import schemas, views
from controlplane.api.deps import (
    AuditDep,
    CursorQuery,
    IfMatchHeader,
    LimitQuery,
    PrincipalDep,
    SessionDep,
    etag,
    parse_if_match,
)
from controlplane.api.routes.common import PROBLEMS, visible_tenant
from controlplane.auth import audit
from controlplane.auth.policy import Action
from controlplane.billing import pricing as billing
from controlplane.db.types import utcnow
from controlplane.provisioning import admission, hostnames
from controlplane.tenants import domains, importing, services
from controlplane.tenants.errors import MunicipalityCsvInvalid
from controlplane.tenants.models import TenantDomain, TenantStatus

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], responses=PROBLEMS)


@router.post("", status_code=201, response_model=schemas.TenantPublic)
def create_tenant(
    body: schemas.TenantCreate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.TenantPublic:
    principal.check(Action.TENANT_WRITE)
    fields = body.model_dump(exclude_unset=True, mode="json")
    tenant = services.create_tenant(session, **fields)
    audit.record(
        session,
        context,
        action="tenant.create",
        resource=f"tenant:{tenant.slug}",
        tenant_id=tenant.id,
        details=fields,
    )
    session.commit()
    response.headers["ETag"] = etag(tenant.version)
    response.headers["Location"] = f"/api/v1/tenants/{tenant.slug}"
    return views.tenant(tenant)


@router.get("", response_model=schemas.Page[schemas.TenantPublic])
def list_tenants(
    session: SessionDep,
    principal: PrincipalDep,
    status: schemas.TenantStatusName | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.TenantPublic]:
    principal.check(Action.TENANT_READ)
    page = services.list_tenants(
        session,
        only=principal.tenant_id if principal.is_tenant_bound else None,
        status=None if status is None else TenantStatus(status),
        limit=limit,
        cursor=cursor,
    )
    return schemas.Page(items=[views.tenant(t) for t in page.items], next_cursor=page.next_cursor)


_CSV_BODY = Body(
    media_type="text/csv",
    description="nis_code,name_nl,province,population,population_year (Statbel).",
)


@router.post("/import", response_model=schemas.ImportSummary)
def import_tenants(
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    csv_text: Annotated[str, _CSV_BODY],
) -> schemas.ImportSummary:
    """Import the municipality CSV (idempotent: re-import updates inhabitants)."""
    principal.check(Action.TENANT_WRITE)
    if "\x00" in csv_text:
        raise MunicipalityCsvInvalid("The CSV contains NUL characters; it is not a text file.")
    summary = importing.import_municipalities(session, csv_text)
    audit.record(
        session,
        context,
        action="tenant.import",
        resource="tenants",
        details={
            "created": len(summary.created),
            "updated": len(summary.updated),
            "unchanged": len(summary.unchanged),
        },
    )
    session.commit()
    return schemas.ImportSummary(
        created=summary.created, updated=summary.updated, unchanged=summary.unchanged
    )


@router.get("/{tenant}", response_model=schemas.TenantPublic)
def show_tenant(
    tenant: str, session: SessionDep, principal: PrincipalDep, response: Response
) -> schemas.TenantPublic:
    row = visible_tenant(session, principal, tenant, Action.TENANT_READ)
    response.headers["ETag"] = etag(row.version)
    return views.tenant(row)


@router.patch("/{tenant}", response_model=schemas.TenantPublic)
def update_tenant(
    tenant: str,
    body: schemas.TenantUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> schemas.TenantPublic:
    row = visible_tenant(session, principal, tenant, Action.TENANT_WRITE)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "inhabitants" in changes and changes["inhabitants"] is None:
        billing.check_inhabitants_kept(session, row, utcnow())
    diff = services.update_tenant(
        session,
        row,
        changes,
        expected_version=parse_if_match(if_match),
        live_instances=admission.live_instance_count,
    )
    if diff:
        audit.record(
            session,
            context,
            action="tenant.update",
            resource=f"tenant:{row.slug}",
            tenant_id=row.id,
            details={"version": row.version, "changed": diff},
        )
    session.commit()
    response.headers["ETag"] = etag(row.version)
    return views.tenant(row)


# -- granted domains ----------------------------------------------------------------------


def _domain(row: TenantDomain) -> schemas.DomainPublic:
    return schemas.DomainPublic.model_validate(row)


@router.get("/{tenant}/domains", response_model=list[schemas.DomainPublic])
def list_domains(
    tenant: str, session: SessionDep, principal: PrincipalDep
) -> list[schemas.DomainPublic]:
    """The domains granted to the tenant (its instances may use them and their subdomains)."""
    row = visible_tenant(session, principal, tenant, Action.TENANT_READ)
    return [_domain(d) for d in domains.list_domains(session, row)]


@router.post("/{tenant}/domains", status_code=201, response_model=schemas.DomainPublic)
def grant_domain(
    tenant: str,
    body: schemas.DomainGrant,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.DomainPublic:
    """Grant a domain to the tenant (operators only; a domain belongs to one tenant)."""
    row = visible_tenant(session, principal, tenant, Action.TENANT_WRITE)
    grant, created = domains.grant_domain(
        session, tenant=row, domain=body.domain, granted_by=principal.actor
    )
    if created:
        audit.record(
            session,
            context,
            action="tenant.domain.grant",
            resource=f"tenant:{row.slug}",
            tenant_id=row.id,
            details={"domain": grant.domain},
        )
    else:
        response.status_code = 200
    session.commit()
    response.headers["Location"] = f"/api/v1/tenants/{row.slug}/domains/{grant.domain}"
    return _domain(grant)


@router.delete("/{tenant}/domains/{domain}", status_code=204)
def revoke_domain(
    tenant: str,
    domain: str,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> Response:
    """Take a granted domain back; refused while the tenant's instances still use it."""
    row = visible_tenant(session, principal, tenant, Action.TENANT_WRITE)
    grant = domains.find_grant(session, tenant=row, domain=domain)
    hostnames.check_domain_unused(session, row, grant.domain)
    domains.revoke_domain(session, grant=grant)
    audit.record(
        session,
        context,
        action="tenant.domain.revoke",
        resource=f"tenant:{row.slug}",
        tenant_id=row.id,
        details={"domain": grant.domain},
    )
    session.commit()
    return Response(status_code=204)
