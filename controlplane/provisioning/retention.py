"""Retention on delete: what of a deleted instance is kept, for how long, and its purge.

``instance delete`` without ``--purge`` retains the instance: its workloads stop, its data
stays on the target until ``purge_after`` (the plan's ``retention_days`` from the delete),
and ``instance restore`` brings it back with the same volumes. The reconciler applies only
the data objects of a retained instance's stack (:func:`data_stack`) and prunes the rest;
claims made by StatefulSets from their ``volumeClaimTemplates`` are never the prune's (the
port deletes only what the platform applied, and the rendered StatefulSets keep the
default ``persistentVolumeClaimRetentionPolicy``: Retain). The worker purges instances
whose date has passed (:func:`purge_expired`), audited as ``instance.purge``.

This module must not know about HTTP, Typer or how targets write.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.catalog.publishing import find_version
from controlplane.db.engine import is_postgres
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, Phase
from controlplane.provisioning.targets import Stack
from controlplane.tenants.models import Tenant

#: Kinds kept while an instance is retained: its volumes, the Secrets its data needs
#: (database credentials, sealed on GitOps targets) and its namespace. Everything else
#: (workloads, Services, Ingresses, policies, quotas) is pruned.
DATA_KINDS = frozenset({"Namespace", "PersistentVolumeClaim", "Secret", "SealedSecret"})

#: Days kept when the plan cannot be found (its release was removed from the catalogue).
DEFAULT_RETENTION_DAYS = 30

#: The actor of the worker's purges in the audit log.
WORKER_ACTOR = "system:worker"


def is_data(object_id: str) -> bool:
    """Whether the object id (``apiVersion/kind/name``) names a data object."""
    parts = object_id.split("/")
    return len(parts) >= 2 and parts[-2] in DATA_KINDS


def data_stack(stack: Stack) -> Stack:
    """``stack`` with its data objects only: what a retained instance keeps on its target."""
    return Stack(
        tenant=stack.tenant,
        instance=stack.instance,
        instance_id=stack.instance_id,
        namespace=stack.namespace,
        objects=tuple(o for o in stack.objects if o.get("kind") in DATA_KINDS),
        digests={oid: d for oid, d in stack.digests.items() if is_data(oid)},
        digest=stack.digest,
    )


def retention_days(session: Session, instance: Instance) -> int:
    """The days ``instance``'s plan keeps data after a delete (``retention_days``)."""
    published = find_version(session, instance.service, instance.version)
    plan = published.to_release().plan(instance.plan) if published is not None else None
    return plan.retention_days if plan is not None else DEFAULT_RETENTION_DAYS


def purge_date(session: Session, instance: Instance, now: datetime) -> datetime:
    return now + timedelta(days=retention_days(session, instance))


def request_purge(session: Session, instance: Instance) -> None:
    """Delete everything now (what ``instance delete`` did before retention); flushes."""
    instance.deletion_requested = True
    instance.phase = Phase.DELETING
    instance.generation += 1
    session.add(instance)
    session.flush()
    queueing.enqueue(session, instance.id, reason="purged")
    session.flush()


def purge_expired(
    session: Session, now: datetime, *, actor: str = WORKER_ACTOR, limit: int = 100
) -> list[Instance]:
    """Purge the retained instances whose ``purge_after`` has passed (audited); flushes.

    Protection was checked when the instance was deleted; a protected retained instance
    is still not purged (someone protected it since: it waits until that is lifted).
    """
    query = (
        select(Instance)
        .where(
            col(Instance.purge_after).is_not(None),
            col(Instance.purge_after) <= now,
            col(Instance.deletion_requested).is_(False),
            col(Instance.deletion_protection).is_(False),
            col(Instance.deleted_at).is_(None),
        )
        .order_by(col(Instance.purge_after))
        .limit(limit)
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        # Workers of several processes purge: each row once, none waits on another.
        query = query.with_for_update(skip_locked=True)
    rows = session.exec(query).all()
    context = AuditContext(actor=actor)
    for row in rows:
        tenant = session.get(Tenant, row.tenant_id)
        request_purge(session, row)
        audit.record(
            session,
            context,
            action="instance.purge",
            resource=f"instance:{tenant.slug if tenant else row.tenant_id}/{row.name}",
            tenant_id=row.tenant_id,
            details={"generation": row.generation, "purgeAfter": row.purge_after, "expired": True},
        )
    return list(rows)
