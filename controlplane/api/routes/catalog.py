"""``/api/v1/catalog``: published services, publishing and version lifecycle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlmodel import Session, col, func, select

from controlplane.api import schemas, views
from controlplane.api.deps import AuditDep, CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS
from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.auth.policy import Action
from controlplane.catalog import publishing
from controlplane.catalog.errors import ServiceNotInCatalog
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.records import PublishedVersion
from controlplane.provisioning import instances
from controlplane.provisioning.models import Instance
from controlplane.rendering.catalog_checks import stack_check, update_check
from controlplane.tenants.models import Tenant

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], responses=PROBLEMS)

ServicePath = Annotated[str, Path(max_length=63)]
VersionPath = Annotated[str, Path(max_length=64)]


@router.get("", response_model=schemas.Page[schemas.CatalogService])
def list_catalog(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.CatalogService]:
    principal.check(Action.CATALOG_READ)
    page = publishing.list_services(session, limit=limit, cursor=cursor)
    rows = session.exec(
        select(PublishedVersion).where(col(PublishedVersion.service).in_(page.items))
    ).all()
    by_service: dict[str, list[PublishedVersion]] = {}
    for row in rows:
        by_service.setdefault(row.service, []).append(row)
    items = [
        views.catalog_service(
            sorted(by_service[name], key=lambda r: publishing.version_key(r.version))
        )
        for name in page.items
    ]
    return schemas.Page(items=items, next_cursor=page.next_cursor)


@router.post(
    "/publish",
    response_model=schemas.PublishResponse,
    responses={201: {"model": schemas.PublishResponse, "description": "Something was published."}},
)
def publish(
    body: schemas.PublishRequest,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.PublishResponse:
    """Publish from the shipped catalogue files, or an uploaded release.

    200 when everything was already published identically, 201 when something was new or
    corrected, 409 when a version exists with other content, 422 when the catalogue files
    fail the checks of ``controlplane catalog validate`` (nothing is published then).

    ``correct`` names published versions whose changed objects replace the release
    (outcome ``corrected``, audited ``catalog.correct`` with ``reason``); every live
    instance of such a version gets a new generation and is enqueued, audited per
    instance as ``instance.release_corrected`` (docs/catalog.md, "Correcting").
    """
    principal.check(Action.CATALOG_WRITE)
    correct = {(c.service, c.version) for c in body.correct}
    if body.release is not None:
        publishing.check_corrections(correct, {(body.release.name, body.release.version.version)})
        results = [
            publishing.publish_release(
                session, body.release, published_by=context.actor, correct=bool(correct)
            )
        ]
    else:
        settings = request.app.state.settings
        catalog = load_catalog(settings.catalog_dir, settings.templates_dir)
        results = publishing.publish_from_catalog(
            session,
            catalog,
            service=body.service,
            version=body.version,
            published_by=context.actor,
            check_stack=stack_check(settings.kubernetes_version),
            check_update=update_check,
            correct=correct,
        )
    created = [r for r in results if r.outcome == publishing.PublishOutcome.CREATED]
    actions = {
        publishing.PublishOutcome.CREATED: "catalog.publish",
        publishing.PublishOutcome.AMENDED: "catalog.amend",
    }
    changed: dict[tuple[str, str], int] = {}
    for result in results:
        if result.outcome in actions:
            audit.record(
                session,
                context,
                action=actions[result.outcome],
                resource=f"service:{result.record.service}/{result.record.version}",
                details={"digest": result.record.digest},
            )
        elif result.outcome == publishing.PublishOutcome.CORRECTED:
            key = (result.record.service, result.record.version)
            changed[key] = _pick_up_correction(session, context, result, body.reason or "")
    session.commit()
    if changed:
        request.app.state.wake_worker()
    response.status_code = 201 if created or changed else 200
    return schemas.PublishResponse(
        published=[
            schemas.PublishedItem(
                service=r.record.service,
                version=r.record.version,
                digest=r.record.digest,
                outcome=r.outcome.value,
                previous_digest=r.previous_digest,
                instances_changed=changed.get((r.record.service, r.record.version)),
            )
            for r in results
        ]
    )


def _pick_up_correction(
    session: Session, context: AuditContext, result: publishing.PublishResult, reason: str
) -> int:
    """Audit a correction, then give its version's live instances a new generation (each
    audited in its tenant's log, so a municipality sees why its instance changed)."""
    service, version = result.record.service, result.record.version
    digests = {"previous_digest": result.previous_digest, "digest": result.record.digest}
    renewed = instances.pick_up_corrected_release(session, service=service, version=version)
    audit.record(
        session,
        context,
        action="catalog.correct",
        resource=f"service:{service}/{version}",
        details={"reason": reason, **digests, "instances": len(renewed)},
    )
    slugs = dict(
        session.exec(
            select(Tenant.id, Tenant.slug).where(col(Tenant.id).in_({i.tenant_id for i in renewed}))
        ).all()
    )
    for instance in renewed:
        audit.record(
            session,
            context,
            action="instance.release_corrected",
            resource=f"instance:{slugs[instance.tenant_id]}/{instance.name}",
            tenant_id=instance.tenant_id,
            details={
                "version": version,
                "generation": instance.generation,
                "reason": reason,
                **digests,
            },
        )
    return len(renewed)


@router.get("/{service}", response_model=schemas.CatalogService)
def show_service(
    service: ServicePath, session: SessionDep, principal: PrincipalDep
) -> schemas.CatalogService:
    principal.check(Action.CATALOG_READ)
    rows = publishing.versions_of(session, service)
    if not rows:
        raise ServiceNotInCatalog(f"There is no published service {service!r}.")
    return views.catalog_service(rows)


@router.get("/{service}/versions/{version}", response_model=schemas.CatalogVersion)
def show_version(
    service: ServicePath, version: VersionPath, session: SessionDep, principal: PrincipalDep
) -> schemas.CatalogVersion:
    """Definition, plans and parameter schema; the template bundle only for operators."""
    principal.check(Action.CATALOG_READ)
    row = publishing.get_version(session, service, version)
    return views.catalog_version(row, with_bundle=principal.may(Action.CATALOG_BUNDLE_READ))


@router.post("/{service}/versions/{version}/deprecate", response_model=schemas.CatalogVersion)
def deprecate(
    service: ServicePath,
    version: VersionPath,
    body: schemas.Deprecation,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> schemas.CatalogVersion:
    principal.check(Action.CATALOG_WRITE)
    row = publishing.get_version(session, service, version)
    publishing.deprecate(session, row, support_ends=body.support_ends, message=body.message)
    audit.record(
        session,
        context,
        action="catalog.deprecate",
        resource=f"service:{service}/{version}",
        details=body.model_dump(mode="json"),
    )
    session.commit()
    return views.catalog_version(row, with_bundle=True)


@router.post("/{service}/versions/{version}/retire", response_model=schemas.CatalogVersion)
def retire(
    service: ServicePath,
    version: VersionPath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    body: schemas.Retirement | None = None,
    force: Annotated[
        bool, Query(description="Retire even the last usable version of a service in use.")
    ] = False,
) -> schemas.CatalogVersion:
    """409 ``last_usable_version`` when this is the last version new instances can use
    and the service has live instances, unless ``force=true``."""
    principal.check(Action.CATALOG_WRITE)
    row = publishing.get_version(session, service, version)
    message = body.message if body else None
    publishing.retire(
        session,
        row,
        message=message,
        live_instances=_service_live_instances(session, service),
        force=force,
    )
    audit.record(
        session,
        context,
        action="catalog.retire",
        resource=f"service:{service}/{version}",
        details={"message": message, "force": force},
    )
    session.commit()
    return views.catalog_version(row, with_bundle=True)


@router.post("/{service}/versions/{version}/reactivate", response_model=schemas.CatalogVersion)
def reactivate(
    service: ServicePath,
    version: VersionPath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    body: schemas.Reactivation | None = None,
) -> schemas.CatalogVersion:
    """Undo a retirement: deprecated again if the version has a support end, else active."""
    principal.check(Action.CATALOG_WRITE)
    row = publishing.get_version(session, service, version)
    message = body.message if body else None
    publishing.reactivate(session, row, message=message)
    audit.record(
        session,
        context,
        action="catalog.reactivate",
        resource=f"service:{service}/{version}",
        details={"message": message, "status": str(row.status)},
    )
    session.commit()
    return views.catalog_version(row, with_bundle=True)


@router.get("/{service}/versions/{version}/impact", response_model=schemas.VersionImpact)
def impact(
    service: ServicePath, version: VersionPath, session: SessionDep, principal: PrincipalDep
) -> schemas.VersionImpact:
    """Live instances on this version and their tenants, before deprecating or retiring it."""
    principal.check(Action.FLEET_READ)
    row = publishing.get_version(session, service, version)
    per_tenant = session.exec(
        select(Tenant.slug, func.count(col(Instance.id)))
        .join(Tenant, col(Tenant.id) == col(Instance.tenant_id))
        .where(
            Instance.service == service,
            Instance.version == version,
            col(Instance.deleted_at).is_(None),
        )
        .group_by(col(Tenant.slug))
        .order_by(col(Tenant.slug))
    ).all()
    tenants = [schemas.TenantUsage(tenant=slug, instances=count) for slug, count in per_tenant]
    on_service = _service_live_instances(session, service)
    last_usable = publishing.is_last_usable(session, row)
    return schemas.VersionImpact(
        service=service,
        version=version,
        status=row.status,
        live_instances=sum(t.instances for t in tenants),
        tenants=tenants,
        service_live_instances=on_service,
        last_usable=last_usable,
        retire_needs_force=last_usable and on_service > 0,
    )


def _service_live_instances(session: Session, service: str) -> int:
    return session.exec(
        select(func.count(col(Instance.id))).where(
            Instance.service == service, col(Instance.deleted_at).is_(None)
        )
    ).one()
