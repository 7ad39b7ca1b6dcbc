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

import copy
import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.catalog.models import canonical_json
from controlplane.catalog.publishing import find_version
from controlplane.db.engine import is_postgres
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, Phase
from controlplane.provisioning.targets import Stack
from controlplane.rendering.naming import object_id
from controlplane.tenants.models import Tenant

#: Kinds kept while an instance is retained: its volumes, the Secrets its data needs
#: (database credentials, sealed on GitOps targets) and its namespace. Everything else
#: (workloads, Services, Ingresses, policies, quotas) is pruned.
DATA_KINDS = frozenset({"Namespace", "PersistentVolumeClaim", "Secret", "SealedSecret"})

#: Days kept when the plan cannot be found (its release was removed from the catalogue).
DEFAULT_RETENTION_DAYS = 30

#: The actor of the worker's purges in the audit log.
WORKER_ACTOR = "system:worker"


#: CloudNativePG's kinds that hold a database (docs/data-safety.md). Deleting its ``Cluster``
#: would delete the database's claims with it (they are owned by the Cluster), and deleting
#: its ``ScheduledBackup`` the ``Backup`` objects it owns. So a retained instance keeps them,
#: changed: the Cluster hibernated (the operator stops its pods and keeps its claims), the
#: schedule suspended (a stopped database takes no backups). The Barman Cloud Plugin's
#: ``ObjectStore`` (where its backups and WAL are, the source a restore reads) is kept as is.
CNPG_API = "postgresql.cnpg.io/v1"
CNPG_DATA_KINDS = frozenset({"Cluster", "ScheduledBackup", "Database"})
BARMAN_CLOUD_API = "barmancloud.cnpg.io/v1"
BARMAN_CLOUD_DATA_KINDS = frozenset({"ObjectStore"})
HIBERNATION = "cnpg.io/hibernation"


def is_data(object_id: str) -> bool:
    """Whether the object id (``apiVersion/kind/name``) names a data object."""
    parts = object_id.split("/")
    if len(parts) < 2:
        return False
    kind, api = parts[-2], "/".join(parts[:-2])
    return (
        kind in DATA_KINDS
        or (api == CNPG_API and kind in CNPG_DATA_KINDS)
        or (api == BARMAN_CLOUD_API and kind in BARMAN_CLOUD_DATA_KINDS)
    )


def _retained_form(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a retained instance keeps it (see :data:`CNPG_DATA_KINDS`)."""
    kept = copy.deepcopy(dict(obj))
    if kept.get("apiVersion") == CNPG_API and kept.get("kind") == "Cluster":
        kept["metadata"].setdefault("annotations", {})[HIBERNATION] = "on"
    elif kept.get("apiVersion") == CNPG_API and kept.get("kind") == "ScheduledBackup":
        kept["spec"] = {**kept.get("spec", {}), "suspend": True}
    return kept


def data_stack(stack: Stack) -> Stack:
    """``stack`` with its data objects only: what a retained instance keeps on its target.

    Objects kept in another form (a hibernated Cluster) get the digest of that form, so that
    a restore, which applies them as rendered, is a change the target writes."""
    objects: list[dict[str, Any]] = []
    digests: dict[str, str] = {}
    for obj in stack.objects:
        oid = object_id(obj)
        if not is_data(oid):
            continue
        kept = _retained_form(obj)
        objects.append(kept)
        same = kept == obj
        digests[oid] = stack.digests[oid] if same else _digest(kept)
    return Stack(
        tenant=stack.tenant,
        instance=stack.instance,
        instance_id=stack.instance_id,
        namespace=stack.namespace,
        objects=tuple(objects),
        digests=digests,
        digest=stack.digest,
    )


def to_write(drifted: set[str]) -> set[str]:
    """Of a retained stack's drifted objects, those retention writes: not the claims, which
    are kept as they are on the target (see ``Reconciler._retain``). A GitOps target also
    names files that are no object (its ``kustomization.yaml``): those are written."""
    return {oid for oid in drifted if oid.split("/")[-2:-1] != ["PersistentVolumeClaim"]}


def _digest(obj: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(obj).encode()).hexdigest()


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
