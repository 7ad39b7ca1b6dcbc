"""Turn stored rows into the public wire models of ``api.schemas``.

Kept apart from the routes so that every answer spells a resource the same way, and so
that nothing stored but private (token hashes, template bundles for non-operators)
leaks by accident: only the fields named here go out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict
from typing import Literal

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import tuple_
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from controlplane.api import schemas
from controlplane.auth.models import ApiToken, AuditEvent
from controlplane.catalog.data import backup_of
from controlplane.catalog.models import DataPlace, EntryPoint
from controlplane.catalog.records import PublishedVersion
from controlplane.provisioning.lifecycle import LifecycleView
from controlplane.provisioning.models import Instance, Phase, Revision, Target, TargetKind
from controlplane.tenants.models import Tenant


def json_response(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """``model`` as the JSON answer, serialised once.

    For a sync route, FastAPI validates a returned model against ``response_model`` again,
    in the thread pool (one more GIL hand-over per request). Routes that build the answer
    from these view functions already hold a validated model of exactly that type, so the
    hot reads return it ready-made; ``response_model`` still documents it in the OpenAPI.
    The bytes are the ones FastAPI would send (pydantic's JSON, by alias).
    """
    return Response(
        content=model.model_dump_json(by_alias=True),
        media_type="application/json",
        headers=headers,
    )


def tenant(row: Tenant) -> schemas.TenantPublic:
    return schemas.TenantPublic.model_validate(row)


def slugs(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(Tenant.id, Tenant.slug).where(col(Tenant.id).in_(wanted))).all()
    return dict(rows)


def token(row: ApiToken, tenant_slug: str | None) -> schemas.TokenPublic:
    return schemas.TokenPublic(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        role=schemas.RoleName(row.role),
        tenant=tenant_slug,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def instance(
    row: Instance,
    tenant_slug: str,
    warnings: list[str] | None = None,
    lifecycle: LifecycleView | None = None,
) -> schemas.InstancePublic:
    return schemas.InstancePublic(
        id=row.id,
        tenant=tenant_slug,
        name=row.name,
        service=row.service,
        version=row.version,
        plan=row.plan,
        parameters=row.parameters,
        target=row.target,
        namespace=row.namespace,
        hostname=row.hostname,
        generation=row.generation,
        deletion_requested=row.deletion_requested,
        deletion_protection=row.deletion_protection,
        restored_from=(
            schemas.RestoredFrom.model_validate(row.restore_from) if row.restore_from else None
        ),
        purge_after=row.purge_after,
        status=schemas.InstanceStatus(
            phase=schemas.PhaseName(row.phase),
            conditions=[schemas.Condition.model_validate(c) for c in row.conditions],
            observedGeneration=row.observed_generation,
            message=row.message,
            currentRevision=row.current_revision,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        warnings=warnings or [],
        lifecycle=schemas.InstanceLifecycle(**asdict(lifecycle)) if lifecycle else None,
        settles_at=settles_at(row),
        urls=urls(row),
    )


def settles_at(row: Instance) -> Literal["Ready", "Committed"]:
    """Committed on a GitOps target without ``observe_kubeconfig``, Ready elsewhere.

    Looked up once per target name and session (a list answer names few targets).
    """
    session = object_session(row)
    if session is None:
        return "Ready"
    known: dict[str, Literal["Ready", "Committed"]] = session.info.setdefault("settles_at", {})
    if row.target not in known:
        found = session.execute(
            select(Target.kind, Target.config).where(col(Target.name) == row.target)
        ).first()
        committed = (
            found is not None
            and found[0] == TargetKind.GITOPS
            and not (found[1] or {}).get("observe_kubeconfig")
        )
        known[row.target] = "Committed" if committed else "Ready"
    return known[row.target]


def urls(row: Instance) -> list[schemas.InstanceURL]:
    """The release's entry points on the instance's host name (none once deleting).

    Entry points are release metadata that publishing may amend, so they are read, not
    cached across requests: one statement per session for every (service, version) of the
    instances it has loaded (a list page), reading only ``release -> 'entry_points'``.
    """
    session = object_session(row)
    if session is None or row.hostname is None or row.deletion_requested or row.purge_after:
        return []
    if row.phase in (Phase.DELETING, Phase.DELETED):
        return []
    known: dict[tuple[str, str], list[EntryPoint]] = session.info.setdefault("entry_points", {})
    if (row.service, row.version) not in known:
        loaded = [o for o in session.identity_map.values() if isinstance(o, Instance)]
        wanted = {(i.service, i.version) for i in [row, *loaded]} - known.keys()
        found = session.execute(
            select(
                PublishedVersion.service,
                PublishedVersion.version,
                col(PublishedVersion.release)["entry_points"],
            ).where(
                tuple_(col(PublishedVersion.service), col(PublishedVersion.version)).in_(wanted)
            )
        ).all()
        for pair in wanted:
            known[pair] = []
        for service, version, points in found:
            known[(service, version)] = [EntryPoint.model_validate(p) for p in points or []]
    return [
        schemas.InstanceURL(name=p.name, title=p.title, url=p.url(row.hostname))
        for p in known[(row.service, row.version)]
    ]


def revision(row: Revision) -> schemas.RevisionPublic:
    return schemas.RevisionPublic.model_validate(row)


def target(row: Target) -> schemas.TargetPublic:
    return schemas.TargetPublic.model_validate(row)


def version_summary(row: PublishedVersion) -> schemas.VersionSummary:
    return schemas.VersionSummary(
        version=row.version,
        app_version=str(row.release.get("version", {}).get("app_version", "")),
        status=row.status,
        support_ends=row.support_ends,
        status_message=row.status_message,
        digest=row.digest,
        published_at=row.published_at,
        forward_only_migrations=bool(
            row.release.get("version", {}).get("forward_only_migrations", False)
        ),
    )


def catalog_service(rows: list[PublishedVersion]) -> schemas.CatalogService:
    newest = rows[-1].release
    return schemas.CatalogService(
        name=str(newest["name"]),
        title=str(newest["title"]),
        description=str(newest["description"]),
        category=str(newest["category"]),
        owner=str(newest["owner"]),
        versions=[version_summary(r) for r in rows],
        data=data_places(DataPlace.model_validate(d) for d in newest.get("data") or []),
    )


def data_places(places: Iterable[DataPlace]) -> list[schemas.DataPlacePublic]:
    """The catalogue's data declaration with what is backed up (derived from each kind)."""
    return [
        schemas.DataPlacePublic(name=p.name, kind=p.kind, holds=p.holds, backup=backup_of(p.kind))
        for p in places
    ]


def catalog_version(row: PublishedVersion, *, with_bundle: bool) -> schemas.CatalogVersion:
    release = row.to_release()
    return schemas.CatalogVersion(
        name=release.name,
        title=release.title,
        description=release.description,
        category=release.category,
        owner=release.owner,
        version=release.version,
        status=row.status,
        support_ends=row.support_ends,
        status_message=row.status_message,
        digest=row.digest,
        published_at=row.published_at,
        published_by=row.published_by,
        plans=release.plans,
        parameters=release.parameters,
        network=release.network,
        shared_cost=release.shared_cost,
        entry_points=release.entry_points,
        data=data_places(release.data),
        bundle=release.bundle if with_bundle else None,
    )


def audit_event(row: AuditEvent, tenant_slug: str | None) -> schemas.AuditEventPublic:
    return schemas.AuditEventPublic(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        resource=row.resource,
        tenant=tenant_slug,
        request_id=row.request_id,
        source_ip=row.source_ip,
        details=row.details,
        outcome=row.outcome,
    )
