"""``/api/v1/tenants/{tenant}/instances``: the desired state of service stacks.

Writes answer ``202 Accepted`` with the instance: the desired state is recorded and a
reconcile request is queued; ``status`` shows how far the reconciler got. Every answer
carries ``ETag: "<generation>"`` for ``If-Match``.

``?dryRun=All`` on create and update (the Kubernetes spelling) runs every check of the real
request (role, admission, placement, host name, parameters) in its transaction, renders
the objects the reconciler would apply, and rolls back: ``200`` with the instance as it
would be and its ``objects`` (Secret values redacted); nothing is kept, queued or audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlmodel import Session

from controlplane.api import schemas, views
from controlplane.api.deps import (
    AuditDep,
    BearerDep,
    CursorQuery,
    IfMatchHeader,
    LimitQuery,
    ParameterCheckDep,
    PrincipalDep,
    SessionDep,
    etag,
    parse_if_match,
    preview_renderers,
    read_in_one_hop,
)
from controlplane.api.routes.common import PROBLEMS, visible_tenant
from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.auth.policy import Action, Principal
from controlplane.db.types import utcnow
from controlplane.provisioning import backups, credentials, instances, lifecycle
from controlplane.provisioning.instances import Change
from controlplane.provisioning.models import Phase, Target
from controlplane.provisioning.targets import StackTarget
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.tenants.models import Tenant

router = APIRouter(
    prefix="/api/v1/tenants/{tenant}/instances", tags=["instances"], responses=PROBLEMS
)


def _wake_worker(request: Request) -> Callable[[], None]:
    """The app's hook that wakes its embedded worker (a no-op when it runs none)."""
    return cast(Callable[[], None], request.app.state.wake_worker)


#: Called after a change of desired state is committed, so the worker starts at once
#: instead of at its next poll tick.
WakeWorkerDep = Annotated[Callable[[], None], Depends(_wake_worker)]

TenantPath = Annotated[str, Path(max_length=63)]
NamePath = Annotated[str, Path(max_length=63)]
DryRunQuery = Annotated[
    Literal["All"] | None,
    Query(
        alias="dryRun",
        description="`All`: check and render everything, keep nothing (answers 200).",
    ),
]


class InstanceDryRun(schemas.InstancePublic):
    """The answer of a dry run: the instance as it would be and what would be applied."""

    #: The rendered objects in apply order; Secret ``data``/``stringData`` values redacted.
    objects: list[dict[str, Any]]


DRY_RUN_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"model": InstanceDryRun, "description": "Dry run (`?dryRun=All`): nothing was kept."}
}


def _dry_run_answer(request: Request, session: Session, tenant: Tenant, change: Change) -> Response:
    """Render what the change would apply, then roll the whole request back."""
    objects = instances.dry_run_objects(
        session, tenant, change.instance, renderer_for=preview_renderers(request)
    )
    view = views.instance(change.instance, tenant.slug, change.warnings)
    session.rollback()
    return views.json_response(InstanceDryRun(**view.model_dump(), objects=objects))


def _answer(
    session: Session,
    context: AuditContext,
    tenant: Tenant,
    change: Change,
    action: str,
    response: Response,
    wake_worker: Callable[[], None],
    details: dict[str, object] | None = None,
) -> schemas.InstancePublic:
    instance = change.instance
    if change.diff or action == "instance.create":
        audit.record(
            session,
            context,
            action=action,
            resource=f"instance:{tenant.slug}/{instance.name}",
            tenant_id=tenant.id,
            details={"generation": instance.generation, **(details or {})},
        )
    session.commit()
    if change.diff or action == "instance.create":
        wake_worker()
    response.headers["ETag"] = etag(instance.generation)
    response.headers["Location"] = f"/api/v1/tenants/{tenant.slug}/instances/{instance.name}"
    if change.warnings:
        response.headers["X-Warnings"] = (
            "; ".join(change.warnings).encode("ascii", "replace").decode()
        )
    return views.instance(instance, tenant.slug, change.warnings)


@router.post("", status_code=202, response_model=schemas.InstancePublic, responses=DRY_RUN_ANSWER)
def create_instance(
    request: Request,
    tenant: TenantPath,
    body: schemas.InstanceCreate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    check: ParameterCheckDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    dry_run: DryRunQuery = None,
) -> schemas.InstancePublic | Response:
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_WRITE)
    change = instances.create_instance(
        session,
        tenant=row,
        name=body.name,
        service=body.service,
        version=body.version,
        plan=body.plan,
        parameters=body.parameters,
        target=body.target,
        check_parameters=check,
        # Tenant roles must not learn which targets exist beyond their grants.
        explain_placement=not principal.is_tenant_bound,
        protect=body.deletion_protection,
        restore_from=(
            backups.RestoreRequest(body.restore_from.instance, body.restore_from.time)
            if body.restore_from is not None
            else None
        ),
    )
    if dry_run:
        return _dry_run_answer(request, session, row, change)
    i = change.instance
    return _answer(
        session,
        context,
        row,
        change,
        "instance.create",
        response,
        wake_worker,
        {
            "service": i.service,
            "version": i.version,
            "plan": i.plan,
            "target": i.target,
            "deletionProtection": i.deletion_protection,
            **({"restoreFrom": i.restore_from} if i.restore_from else {}),
        },
    )


@router.get("", response_model=schemas.Page[schemas.InstancePublic])
async def list_instances(
    request: Request,
    tenant: TenantPath,
    token: BearerDep,
    service: Annotated[str | None, Query(max_length=63)] = None,
    phase: schemas.PhaseName | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    # Hot read (docs/api.md, Performance): token check and body in one thread-pool trip, a
    # fixed number of statements whatever the page size (tests/api/test_query_counts.py),
    # answered ready-serialised.
    def read(session: Session, principal: Principal) -> Response:
        row = visible_tenant(session, principal, tenant, Action.INSTANCE_READ)
        page = instances.list_instances(
            session,
            row,
            service=service,
            phase=Phase(phase) if phase else None,
            limit=limit,
            cursor=cursor,
        )
        cycles = lifecycle.views_for(session, page.items, today=utcnow().date())
        answer = schemas.Page[schemas.InstancePublic](
            items=[views.instance(i, row.slug, lifecycle=cycles[i.id]) for i in page.items],
            next_cursor=page.next_cursor,
        )
        return views.json_response(answer)

    return await read_in_one_hop(request, token, read)


@router.get("/{name}", response_model=schemas.InstancePublic)
async def show_instance(
    request: Request, tenant: TenantPath, name: NamePath, token: BearerDep
) -> Response:
    def read(session: Session, principal: Principal) -> Response:
        row = visible_tenant(session, principal, tenant, Action.INSTANCE_READ)
        instance = instances.get_instance(session, row, name)
        cycle = lifecycle.view_for(session, instance, today=utcnow().date())
        return views.json_response(
            views.instance(instance, row.slug, lifecycle=cycle),
            headers={"ETag": etag(instance.generation)},
        )

    return await read_in_one_hop(request, token, read)


@router.patch(
    "/{name}", status_code=202, response_model=schemas.InstancePublic, responses=DRY_RUN_ANSWER
)
def update_instance(
    request: Request,
    tenant: TenantPath,
    name: NamePath,
    body: schemas.InstanceUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    check: ParameterCheckDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    if_match: IfMatchHeader = None,
    dry_run: DryRunQuery = None,
) -> schemas.InstancePublic | Response:
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_WRITE)
    instance = instances.get_instance(session, row, name)
    change = instances.update_instance(
        session,
        tenant=row,
        instance=instance,
        plan=body.plan,
        parameters=body.parameters,
        version=body.version,
        expected_generation=parse_if_match(if_match),
        check_parameters=check,
    )
    if dry_run:
        return _dry_run_answer(request, session, row, change)
    # Parameter values may be personal or sensitive: the audit log names the keys only.
    changed = {
        k: (sorted({*v[0], *v[1]}) if k == "parameters" else v) for k, v in change.diff.items()
    }
    return _answer(
        session,
        context,
        row,
        change,
        "instance.update",
        response,
        wake_worker,
        {"changed": changed},
    )


@router.delete("/{name}", status_code=202, response_model=schemas.InstancePublic)
def delete_instance(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    if_match: IfMatchHeader = None,
    purge: Annotated[
        bool,
        Query(description="Delete everything now, data included (default: retain the data)."),
    ] = False,
) -> schemas.InstancePublic:
    """Delete: the workloads stop and the data is retained until ``purge_after`` (restore
    with ``POST …/restore``); with ``purge=true`` everything goes now."""
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_WRITE)
    instance = instances.get_instance(session, row, name)
    change = instances.delete_instance(
        session, instance=instance, expected_generation=parse_if_match(if_match), purge=purge
    )
    action = "instance.purge" if purge else "instance.delete"
    details: dict[str, object] = {"purge": purge}
    if instance.purge_after is not None and not purge:
        details["purgeAfter"] = instance.purge_after.isoformat()
    return _answer(session, context, row, change, action, response, wake_worker, details)


@router.post("/{name}/restore", status_code=202, response_model=schemas.InstancePublic)
def restore_instance(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> schemas.InstancePublic:
    """Bring a retained instance back on its kept volumes (409 ``instance_not_retained``
    for any other instance); audited as ``instance.restore``."""
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_WRITE)
    instance = instances.get_instance(session, row, name)
    change = instances.restore_instance(
        session, tenant=row, instance=instance, expected_generation=parse_if_match(if_match)
    )
    return _answer(session, context, row, change, "instance.restore", response, wake_worker)


def _protection(
    session: Session,
    principal: Principal,
    context: AuditContext,
    response: Response,
    tenant: str,
    name: str,
    *,
    protected: bool,
) -> schemas.InstancePublic:
    """Set or lift deletion protection: its own action and permission, audited when it
    changes, and no new generation (nothing changes on the target)."""
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_PROTECT)
    instance = instances.get_instance(session, row, name)
    change = instances.set_deletion_protection(session, instance=instance, protected=protected)
    if change.diff:
        audit.record(
            session,
            context,
            action="instance.protect" if protected else "instance.unprotect",
            resource=f"instance:{row.slug}/{instance.name}",
            tenant_id=row.id,
            details={"deletionProtection": protected},
        )
    session.commit()
    response.headers["ETag"] = etag(instance.generation)
    return views.instance(instance, row.slug)


@router.post("/{name}/protection", response_model=schemas.InstancePublic)
def protect_instance(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.InstancePublic:
    """Protect the instance against deletion (idempotent): delete answers 409
    ``deletion_protected`` until ``DELETE …/protection`` lifts it."""
    return _protection(session, principal, context, response, tenant, name, protected=True)


@router.delete("/{name}/protection", response_model=schemas.InstancePublic)
def unprotect_instance(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> schemas.InstancePublic:
    """Lift the deletion protection (idempotent; audited as ``instance.unprotect``)."""
    return _protection(session, principal, context, response, tenant, name, protected=False)


@router.get("/{name}/revisions", response_model=schemas.Page[schemas.RevisionPublic])
def list_revisions(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> schemas.Page[schemas.RevisionPublic]:
    """Newest first."""
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_READ)
    instance = instances.get_instance(session, row, name)
    page = instances.list_revisions(session, instance, limit=limit, cursor=cursor)
    return schemas.Page(items=[views.revision(r) for r in page.items], next_cursor=page.next_cursor)


@router.post(
    "/{name}/rollback",
    status_code=202,
    response_model=schemas.InstancePublic,
    responses=DRY_RUN_ANSWER,
)
def rollback_instance(
    request: Request,
    tenant: TenantPath,
    name: NamePath,
    body: schemas.Rollback,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    check: ParameterCheckDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    if_match: IfMatchHeader = None,
    dry_run: DryRunQuery = None,
) -> schemas.InstancePublic | Response:
    # Whoever may write the instance may accept the data loss: tenant-admin (it is the
    # tenant's data) and operators; tenant-viewer and finance cannot roll back at all.
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_WRITE)
    instance = instances.get_instance(session, row, name)
    change = instances.rollback_instance(
        session,
        tenant=row,
        instance=instance,
        revision=body.revision,
        expected_generation=parse_if_match(if_match),
        check_parameters=check,
        allow_data_loss=body.allow_data_loss,
    )
    if dry_run:
        return _dry_run_answer(request, session, row, change)
    details: dict[str, object] = {"revision": body.revision}
    if body.allow_data_loss:
        details["allowDataLoss"] = True
        if "version" in change.diff:
            old, new = change.diff["version"]
            details["forwardOnlyCrossed"] = instances.forward_only_crossed(
                session, instance.service, old, new
            )
    return _answer(
        session,
        context,
        row,
        change,
        "instance.rollback",
        response,
        wake_worker,
        details,
    )


def _target_for(request: Request) -> Callable[[Target], StackTarget]:
    """The app's live targets (one per row and config), built on first use."""
    registry = getattr(request.app.state, "credential_targets", None)
    if registry is None:
        registry = request.app.state.credential_targets = TargetRegistry()
    return cast(TargetRegistry, registry).get


@router.get(
    "/{name}/credentials",
    response_model=schemas.InstanceCredentials,
    responses={409: {"description": "Not readable from this target, or not there yet."}},
)
def show_credentials(
    request: Request,
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> Response:
    """Read from the instance's cluster when asked: never stored; the audit log records who
    read them, never the values."""
    row = visible_tenant(session, principal, tenant, Action.CREDENTIALS_READ)
    instance = instances.get_instance(session, row, name)
    given = credentials.read_credentials(session, instance, target_for=_target_for(request))
    audit.record(
        session,
        context,
        action="instance.credentials.read",
        resource=f"instance:{row.slug}/{instance.name}",
        tenant_id=row.id,
        details={"secret": given.secret, "namespace": given.namespace},
    )
    session.commit()
    answer = schemas.InstanceCredentials(
        username=given.username,
        password=given.password,
        secret=given.secret,
        namespace=given.namespace,
        note=given.note,
    )
    return views.json_response(answer, headers={"Cache-Control": "no-store"})


@router.get(
    "/{name}/backups",
    response_model=schemas.InstanceBackups,
    responses={409: {"description": "The target keeps no backups, or cannot read its cluster."}},
)
def list_backups(
    request: Request,
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
) -> schemas.InstanceBackups:
    """Read from the instance's cluster when asked: what the database operator reports."""
    row = visible_tenant(session, principal, tenant, Action.INSTANCE_READ)
    instance = instances.get_instance(session, row, name)
    found = backups.list_backups(session, instance, target_for=_target_for(request))
    return schemas.InstanceBackups(
        instance=found.instance,
        namespace=found.namespace,
        backups=[
            schemas.InstanceBackup.model_validate(b, from_attributes=True) for b in found.backups
        ],
        schedules=list(found.schedules),
        recoverable_from=found.recoverable_from,
        last_successful=found.last_successful,
    )


@router.post("/{name}/credentials/rotate", status_code=202, response_model=schemas.InstancePublic)
def rotate_credentials(
    tenant: TenantPath,
    name: NamePath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    wake_worker: WakeWorkerDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> schemas.InstancePublic:
    """Replace the administrator credential: a new generation the reconciler applies (the
    answer is the instance, never a credential: safe to replay with ``Idempotency-Key``)."""
    row = visible_tenant(session, principal, tenant, Action.CREDENTIALS_WRITE)
    instance = instances.get_instance(session, row, name)
    change = credentials.rotate(session, instance, expected_generation=parse_if_match(if_match))
    return _answer(
        session, context, row, change, "instance.credentials.rotate", response, wake_worker
    )
