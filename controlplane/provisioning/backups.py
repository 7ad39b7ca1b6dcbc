"""The backups of an instance's database, as its cluster's database operator reports them.

On a target with the ``cloudnative-pg`` capability the instance's database is a
CloudNativePG ``Cluster`` named ``postgres``; its ``ScheduledBackup`` makes ``Backup``
objects, and the operator writes their phase and times into their status. This module reads
those objects when asked (nothing is stored): what a tenant sees is what the operator
observed, never what the platform merely asked for. A target without the capability keeps
no backups, and says so.

This module must not know about HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from controlplane.errors import Conflict, ErrorItem, InvalidInput, NotFound
from controlplane.provisioning.models import Instance, Target
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.rendering.target_ref import CLOUDNATIVE_PG

if TYPE_CHECKING:
    from controlplane.kube.client import KubeClient
    from controlplane.provisioning.targets import StackTarget

#: The CloudNativePG API the shared database component renders (templates/_components).
CNPG_API = "postgresql.cnpg.io/v1"
#: The Barman Cloud Plugin's API: the ``ObjectStore`` the database archives to.
PLUGIN_API = "barmancloud.cnpg.io/v1"
#: The name of the database ``Cluster`` (and its ``ObjectStore``, and the server name in the
#: store) in every instance namespace.
DATABASE_CLUSTER = "postgres"


class BackupsNotKept(Conflict):
    """The instance's target does not run its database through an operator that backs up."""

    code = "backups_not_kept"


class BackupsNotReadable(Conflict):
    """The control plane cannot read the instance's cluster (a GitOps target, no observer)."""

    code = "backups_not_readable"


@dataclass(frozen=True)
class Backup:
    """One ``Backup`` object as the operator reports it."""

    name: str
    #: The operator's phase (``completed``, ``running``, ``failed``, …); "pending" when the
    #: operator has not reported on it yet.
    phase: str
    method: str
    started_at: datetime | None
    stopped_at: datetime | None
    #: Set by a scheduled backup (its ``ScheduledBackup``), empty for one asked by hand.
    schedule: str
    error: str


@dataclass(frozen=True)
class Backups:
    """The backups of one instance and the recovery window the operator reports."""

    instance: str
    namespace: str
    backups: tuple[Backup, ...]
    #: Cron expressions of the instance's ``ScheduledBackup`` objects.
    schedules: tuple[str, ...]
    #: The earliest time the database can be recovered to (the plugin's
    #: ``firstRecoverabilityPoint`` on the ObjectStore); None until it reports one.
    recoverable_from: datetime | None
    last_successful: datetime | None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _backup(obj: Mapping[str, Any]) -> Backup:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = metadata.get("labels") or {}
    return Backup(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase") or "pending"),
        method=str(status.get("method") or spec.get("method") or "barmanObjectStore"),
        started_at=_time(status.get("startedAt")),
        stopped_at=_time(status.get("stoppedAt")),
        schedule=str(labels.get("cnpg.io/scheduled-backup", "")),
        error=str(status.get("error") or ""),
    )


def read_backups(port: KubeClient, instance: str, namespace: str) -> Backups:
    """The backups of the database ``Cluster`` in ``namespace``, newest first."""
    from controlplane.kube.errors import UnknownKind

    try:
        items = port.list_objects(CNPG_API, "Backup", namespace)
        schedules = port.list_objects(CNPG_API, "ScheduledBackup", namespace)
        # The Barman Cloud Plugin reports the recovery window on the instance's ObjectStore
        # (named like the Cluster), per server; the get answers None when it is not served.
        store = port.get(namespace, f"{PLUGIN_API}/ObjectStore/{DATABASE_CLUSTER}")
    except UnknownKind as exc:
        raise BackupsNotKept(
            f"The cluster of instance {instance!r} does not run CloudNativePG "
            "(its Backup kind is not served there), so no backups are kept.",
            hint="Ask the platform operator: the target must run CloudNativePG.",
        ) from exc
    ours = [
        _backup(item)
        for item in items
        if ((item.get("spec") or {}).get("cluster") or {}).get("name") == DATABASE_CLUSTER
    ]
    ours.sort(key=lambda b: (b.started_at is not None, b.started_at, b.name), reverse=True)
    windows = ((store or {}).get("status") or {}).get("serverRecoveryWindow") or {}
    window = windows.get(DATABASE_CLUSTER) or {}
    return Backups(
        instance=instance,
        namespace=namespace,
        backups=tuple(ours),
        schedules=tuple(
            str((s.get("spec") or {}).get("schedule", ""))
            for s in schedules
            if ((s.get("spec") or {}).get("cluster") or {}).get("name") == DATABASE_CLUSTER
        ),
        recoverable_from=_time(window.get("firstRecoverabilityPoint")),
        last_successful=_time(window.get("lastSuccessfulBackupTime")),
    )


def list_backups(
    session: Session, instance: Instance, *, target_for: Callable[[Target], StackTarget]
) -> Backups:
    """The instance's backups, read from its cluster now; refusals name why and what to do."""
    row = session.exec(select(Target).where(Target.name == instance.target)).first()
    if row is None or CLOUDNATIVE_PG not in (row.capabilities or []):
        raise BackupsNotKept(
            f"Instance {instance.name!r} runs on target {instance.target!r}, which does not "
            "run databases through CloudNativePG: the platform keeps no backups of it.",
            hint="Ask the platform operator to declare the capability `cloudnative-pg` on a "
            "target and to move the instance there; until then keep your own exports.",
        )
    target = target_for(row)
    port: KubeClient | None = getattr(target, "port", None)
    if port is None and isinstance(target, GitOpsTarget) and target.observer is not None:
        port = target.observer
    if port is None:
        raise BackupsNotReadable(
            f"The target {instance.target!r} writes to a GitOps repository and cannot read "
            f"its cluster: the backups are the `Backup` objects in namespace "
            f"`{instance.namespace}` of that cluster.",
            hint="Ask the people who run that cluster, or the operator to give the target "
            "read access (`cityctl target create … --observe-kubeconfig FILE`).",
        )
    return read_backups(port, instance.name, instance.namespace)


# -- creating an instance from a backup ------------------------------------------------------


@dataclass(frozen=True)
class RestoreRequest:
    """``--restore-from NAME[@TIME]``: the tenant's instance and the point in time (None:
    the latest the backups reach)."""

    instance: str
    time: datetime | None = None


def restore_source(
    session: Session,
    *,
    tenant_id: Any,
    service: str,
    target: Target,
    asked: RestoreRequest,
    now: datetime,
) -> dict[str, Any]:
    """What a new instance records as ``restore_from``; refusals change nothing.

    The source is an instance of the same tenant (full name match, never another tenant's)
    and the same service, whose database runs through CloudNativePG on a target with the
    same object store as the new instance's target: the new database is recovered from the
    source's base backups and WAL in that store.
    """
    source = session.exec(
        select(Instance).where(
            Instance.tenant_id == tenant_id,
            Instance.name == asked.instance,
            col(Instance.deleted_at).is_(None),
        )
    ).first()
    if source is None:
        raise NotFound(
            f"There is no instance {asked.instance!r} in this tenant to restore from.",
            errors=[ErrorItem("restore_from.instance", "no such instance")],
            hint="List the tenant's instances with `cityctl instance list`.",
        )
    if source.service != service:
        raise InvalidInput(
            f"Instance {source.name!r} runs {source.service}, not {service}: a database "
            "restores only into the same service.",
            errors=[ErrorItem("restore_from.instance", f"runs {source.service}")],
            hint=f"Create the new instance with `--service {source.service}`.",
        )
    source_target = session.exec(select(Target).where(Target.name == source.target)).first()
    for row, whose in ((source_target, f"instance {source.name!r}"), (target, "the new instance")):
        if row is None or CLOUDNATIVE_PG not in (row.capabilities or []):
            raise BackupsNotKept(
                f"The target of {whose} does not run databases through CloudNativePG: "
                "there are no backups to restore from or to.",
                hint="Ask the platform operator for a target with the capability "
                "`cloudnative-pg` (`cityctl target create … --capability cloudnative-pg`).",
            )
    assert source_target is not None
    store = (source_target.config or {}).get("backup_destination")
    if not store:
        raise BackupsNotKept(
            f"The target of instance {source.name!r} has no backup object store: nothing of "
            "it was backed up.",
            hint="Ask the platform operator to configure the target's backup destination.",
        )
    if (target.config or {}).get("backup_destination") != store:
        raise Conflict(
            f"The new instance's target {target.name!r} does not use the object store of "
            f"instance {source.name!r}'s target {source_target.name!r}, so it cannot read "
            "its backups.",
            errors=[ErrorItem("target", f"use {source_target.name!r}")],
            hint=f"Create the new instance with `--target {source_target.name}`.",
        )
    if asked.time is not None:
        when = asked.time
        if when.tzinfo is None:
            raise InvalidInput(
                "The restore time has no time zone.",
                errors=[ErrorItem("restore_from.time", "add a UTC offset, e.g. Z or +01:00")],
                hint="Example: `--restore-from forms@2026-11-28T09:30:00Z`.",
            )
        if when > now:
            raise InvalidInput(
                "The restore time is in the future.",
                errors=[ErrorItem("restore_from.time", f"is after now ({now:%Y-%m-%dT%H:%M}Z)")],
                hint="Give a time in the past, or none for the latest backup.",
            )
        if when < source.created_at:
            raise InvalidInput(
                f"Instance {source.name!r} did not exist yet at the restore time.",
                errors=[
                    ErrorItem(
                        "restore_from.time",
                        f"is before its creation ({source.created_at:%Y-%m-%dT%H:%M}Z)",
                    )
                ],
                hint=f"See what its backups reach: `cityctl instance backups {source.name}`.",
            )
    return {
        "instance": source.name,
        "instance_id": str(source.id),
        "namespace": source.namespace,
        "time": asked.time.isoformat() if asked.time is not None else None,
    }
