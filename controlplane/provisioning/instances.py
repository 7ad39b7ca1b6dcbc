"""Record the desired state of instances: create, update, delete, roll back.

Each change passes admission, writes the instance row, bumps ``generation`` and upserts
the instance's reconcile request (due now; a held lease is kept); the reconciler makes it true
later. Nothing here talks to a target. Functions flush but never commit: the caller owns
the transaction, so a refused request changes nothing.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane.catalog.models import Plan, ServiceRelease
from controlplane.catalog.publishing import find_version, versions_of
from controlplane.catalog.versions import crossed_by_rollback
from controlplane.db.locking import lock_row, reread
from controlplane.db.paging import Page, SortKey, paginate, str_key, uuid_key
from controlplane.db.types import utcnow
from controlplane.errors import Conflict, ErrorItem, InvalidInput, NotFound, PreconditionFailed
from controlplane.provisioning import admission, hostnames, queueing, retention
from controlplane.provisioning.admission import ParameterCheck
from controlplane.provisioning.backups import RestoreRequest, restore_source
from controlplane.provisioning.models import Instance, Phase, Revision, Target
from controlplane.provisioning.placement import place
from controlplane.provisioning.render_refs import instance_ref, target_ref, tenant_ref
from controlplane.provisioning.volumes import kept_storage_warning, storage_floor
from controlplane.rendering.naming import namespace_for
from controlplane.rendering.renderer import Renderer
from controlplane.rendering.tls import TlsIssuer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.models import Tenant


class InstanceNotFound(NotFound):
    """There is no such instance (or it is not visible to you)."""

    title = "Instance not found"
    code = "instance_not_found"


class InstanceExists(Conflict):
    """An instance with this name already exists in the tenant."""

    title = "Instance exists"
    code = "instance_exists"


class NamespaceTaken(Conflict):
    """Another live instance already has this namespace on this target."""

    title = "Namespace taken"
    code = "namespace_taken"


class InstanceBeingDeleted(Conflict):
    """The instance is being deleted; it cannot change any more."""

    title = "Instance being deleted"
    code = "instance_deleting"


class DeletionProtected(Conflict):
    """The instance is protected against deletion; lift the protection first."""

    title = "Instance protected against deletion"
    code = "deletion_protected"


class InstanceRetained(Conflict):
    """The instance was deleted and is retained; restore it before changing it."""

    title = "Instance retained"
    code = "instance_retained"


class InstanceNotRetained(Conflict):
    """Only a retained instance (deleted without purge) can be restored."""

    title = "Instance not retained"
    code = "instance_not_retained"


class RevisionNotFound(NotFound):
    """The instance has no such revision."""

    title = "Revision not found"
    code = "revision_not_found"


class DataLossRefused(Conflict):
    """The rollback goes back across a version whose data migrations only go forward."""

    title = "Rollback would lose data"
    code = "data_loss_refused"


@dataclass
class Change:
    """An instance after a change, the warnings admission raised and what changed."""

    instance: Instance
    warnings: list[str] = field(default_factory=list)
    diff: dict[str, Any] = field(default_factory=dict)


def get_instance(session: Session, tenant: Tenant, name: str) -> Instance:
    instance = session.exec(
        select(Instance).where(
            Instance.tenant_id == tenant.id,
            Instance.name == name,
            col(Instance.deleted_at).is_(None),
        )
    ).first()
    if instance is None:
        raise InstanceNotFound(f"Tenant {tenant.slug!r} has no instance {name!r}.")
    return instance


def list_instances(
    session: Session,
    tenant: Tenant,
    *,
    service: str | None = None,
    phase: Phase | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Instance]:
    statement = select(Instance).where(
        Instance.tenant_id == tenant.id, col(Instance.deleted_at).is_(None)
    )
    if service:
        statement = statement.where(Instance.service == service)
    if phase:
        statement = statement.where(Instance.phase == phase)
    keys = [str_key(col(Instance.name), "name"), uuid_key(col(Instance.id))]
    return paginate(session, statement, keys, limit=limit, cursor=cursor)


def list_revisions(
    session: Session, instance: Instance, *, limit: int = 50, cursor: str | None = None
) -> Page[Revision]:
    statement = select(Revision).where(Revision.instance_id == instance.id)
    keys = [
        SortKey(col(Revision.number), "number", int, descending=True),
        uuid_key(col(Revision.id), descending=True),
    ]
    return paginate(session, statement, keys, limit=limit, cursor=cursor)


def create_instance(
    session: Session,
    *,
    tenant: Tenant,
    name: str,
    service: str,
    version: str | None,
    plan: str,
    parameters: Mapping[str, Any],
    target: str | None,
    check_parameters: ParameterCheck,
    explain_placement: bool = False,
    protect: bool = False,
    restore_from: RestoreRequest | None = None,
) -> Change:
    """Record a new instance; it starts protected against deletion when ``protect`` is
    asked or its plan declares ``deletion_protection``. With ``restore_from`` its database
    is recovered from the backups of another instance of the tenant (``backups``)."""
    admission.check_tenant_active(tenant)
    admission.check_name(tenant, name)
    if session.get_bind().dialect.name == "postgresql":
        # Serialise the tenant's creates so that the limit and the name check are exact.
        session.exec(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update()).one()
    _check_name_free(session, tenant, name)
    admission.check_capacity(session, tenant)
    admitted = admission.admit(
        session,
        service=service,
        version=version,
        plan=plan,
        parameters=parameters,
        check_parameters=check_parameters,
    )
    placed = place(
        session, tenant=tenant, service=service, explicit=target, explain=explain_placement
    )
    namespace = namespace_for(tenant.slug, name)
    _check_namespace_free(session, placed.name, namespace)
    restored = (
        restore_source(
            session,
            tenant_id=tenant.id,
            service=service,
            target=placed,
            asked=restore_from,
            now=utcnow(),
        )
        if restore_from is not None
        else None
    )
    hostname = hostnames.decide(
        session, tenant=tenant, instance_name=name, release=admitted.release, parameters=parameters
    )
    instance = Instance(
        tenant_id=tenant.id,
        name=name,
        service=service,
        version=admitted.record.version,
        plan=admitted.plan.name,
        parameters=dict(parameters),
        target=placed.name,
        namespace=namespace,
        hostname=hostname,
        generation=1,
        deletion_protection=protect or admitted.plan.deletion_protection,
        restore_from=restored,
    )
    session.add(instance)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        # A concurrent create won the race; the index says which name it took.
        text = str(exc.orig)
        if "uq_instances_live_hostname" in text or (hostname and "hostname" in text):
            raise hostnames.taken(hostname or "", tenant) from exc
        if "uq_instances_live_namespace" in text or "namespace" in text:
            raise _namespace_taken(placed.name, namespace) from exc
        raise _name_taken(tenant, name) from exc
    _enqueue(session, instance, "created")
    return Change(instance=instance, warnings=admitted.warnings)


def _check_namespace_free(session: Session, target: str, namespace: str) -> None:
    # New namespaces cannot collide with each other (``namespace_for`` is injective), but
    # they can with an older ``<tenant>-<instance>`` one kept by a live instance.
    taken = session.exec(
        select(Instance.id).where(
            Instance.target == target,
            Instance.namespace == namespace,
            col(Instance.deleted_at).is_(None),
        )
    ).first()
    if taken is not None:
        raise _namespace_taken(target, namespace)


def _admit_hostname(
    session: Session,
    tenant: Tenant,
    instance: Instance,
    release: ServiceRelease,
    parameters: Mapping[str, Any],
) -> None:
    """Check the host name a change leads to (like at create) and record it."""
    hostname = hostnames.decide(
        session,
        tenant=tenant,
        instance_name=instance.name,
        release=release,
        parameters=parameters,
        current=instance,
    )
    if hostname == instance.hostname:
        return
    instance.hostname = hostname
    session.add(instance)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # taken by a concurrent change since the check
        raise hostnames.taken(hostname or "", tenant) from exc


def _namespace_taken(target: str, namespace: str) -> NamespaceTaken:
    return NamespaceTaken(
        f"The namespace {namespace!r} on target {target!r} belongs to another instance.",
        errors=[ErrorItem("name", f"its namespace {namespace} is taken on target {target}")],
        hint="Choose another instance name.",
    )


def _check_name_free(session: Session, tenant: Tenant, name: str) -> None:
    taken = session.exec(
        select(Instance.id).where(
            Instance.tenant_id == tenant.id,
            Instance.name == name,
            col(Instance.deleted_at).is_(None),
        )
    ).first()
    if taken is not None:
        raise _name_taken(tenant, name)


def _name_taken(tenant: Tenant, name: str) -> InstanceExists:
    return InstanceExists(
        f"Tenant {tenant.slug!r} already has an instance named {name!r}.",
        errors=[ErrorItem("name", "already used in this tenant")],
        hint="Choose another name, or update the existing instance.",
    )


def _lock(session: Session, instance: Instance, expected: int | None) -> None:
    """Lock the instance row and re-read it before a change is checked and written.

    The If-Match check and the next generation are computed from the locked row, so
    concurrent writers are serialised: one ETag admits one change, and every accepted
    change gets its own generation. A writer whose ETag is already stale gets no lock.
    """
    only_if = None if expected is None else col(Instance.generation) == expected
    if lock_row(session, Instance, instance.id, only_if=only_if) is None:
        fresh = reread(session, Instance, instance.id)
        if fresh is None or fresh.deleted_at is not None:
            raise InstanceNotFound(f"Instance {instance.name!r} no longer exists.")
        # Generations only go up: a row that failed ``generation == expected`` moved on.
        raise _moved_on(fresh, expected)
    if instance.deleted_at is not None:
        raise InstanceNotFound(f"Instance {instance.name!r} no longer exists.")


def _moved_on(instance: Instance, expected: int | None) -> PreconditionFailed:
    return PreconditionFailed(
        f"Instance {instance.name!r} is at generation {instance.generation}, not {expected}.",
        hint="Read the instance again and re-apply your change.",
    )


def _check_generation(instance: Instance, expected: int | None) -> None:
    if expected is not None and expected != instance.generation:
        raise _moved_on(instance, expected)


def _check_alive(instance: Instance) -> None:
    if instance.deletion_requested:
        raise InstanceBeingDeleted(f"Instance {instance.name!r} is being deleted.")
    if instance.purge_after is not None:
        raise InstanceRetained(
            f"Instance {instance.name!r} was deleted; its data is retained until "
            f"{instance.purge_after:%Y-%m-%d %H:%M} UTC. Nothing was changed.",
            hint=f"cityctl instance restore {instance.name}",
            extra={"instance": instance.name},
        )


def update_instance(
    session: Session,
    *,
    tenant: Tenant,
    instance: Instance,
    plan: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    version: str | None = None,
    expected_generation: int | None = None,
    check_parameters: ParameterCheck,
) -> Change:
    _lock(session, instance, expected_generation)
    _check_generation(instance, expected_generation)
    _check_alive(instance)
    admission.check_tenant_active(tenant)
    desired: dict[str, Any] = {
        "version": version if version is not None else instance.version,
        "plan": plan if plan is not None else instance.plan,
        "parameters": dict(parameters) if parameters is not None else instance.parameters,
    }
    admitted = admission.admit(
        session,
        service=instance.service,
        version=desired["version"],
        plan=desired["plan"],
        parameters=desired["parameters"],
        check_parameters=check_parameters,
        current=instance,
    )
    _admit_hostname(session, tenant, instance, admitted.release, desired["parameters"])
    warnings = list(admitted.warnings)
    if (desired["plan"], desired["version"]) != (instance.plan, instance.version):
        warnings.extend(_storage_warnings(session, instance, admitted.plan))
    return _protect_for_plan(
        session, _apply(session, instance, desired, warnings, reason="updated"), admitted.plan
    )


def rollback_instance(
    session: Session,
    *,
    tenant: Tenant,
    instance: Instance,
    revision: int,
    expected_generation: int | None = None,
    check_parameters: ParameterCheck,
    allow_data_loss: bool = False,
) -> Change:
    """A new desired state with the inputs of an earlier revision.

    Going back across a version declared ``forward_only_migrations`` is refused
    (:class:`DataLossRefused`) unless ``allow_data_loss``: checked before anything changes.
    """
    _lock(session, instance, expected_generation)
    _check_generation(instance, expected_generation)
    _check_alive(instance)
    admission.check_tenant_active(tenant)
    earlier = session.exec(
        select(Revision).where(Revision.instance_id == instance.id, Revision.number == revision)
    ).first()
    if earlier is None:
        raise RevisionNotFound(
            f"Instance {instance.name!r} has no revision {revision}.",
            hint=f"`cityctl instance history {instance.name}` lists its revisions.",
        )
    if not allow_data_loss:
        _check_data_loss(session, instance, earlier.version, revision)
    desired: dict[str, Any] = {
        "version": earlier.version,
        "plan": earlier.plan,
        "parameters": earlier.parameters,
    }
    admitted = admission.admit(
        session,
        service=instance.service,
        version=earlier.version,
        plan=earlier.plan,
        parameters=earlier.parameters,
        check_parameters=check_parameters,
        current=instance,
        rollback=True,
    )
    _admit_hostname(session, tenant, instance, admitted.release, earlier.parameters)
    warnings = [*admitted.warnings, *_storage_warnings(session, instance, admitted.plan)]
    change = _apply(session, instance, desired, warnings, reason=f"rollback:{revision}")
    return _protect_for_plan(session, change, admitted.plan)


def _protect_for_plan(session: Session, change: Change, plan: Plan) -> Change:
    """An instance changed to a plan that declares ``deletion_protection`` becomes
    protected (never the reverse: only ``set_deletion_protection`` lifts it)."""
    instance = change.instance
    if "plan" in change.diff and plan.deletion_protection and not instance.deletion_protection:
        instance.deletion_protection = True
        session.add(instance)
        session.flush()
        change.diff["deletion_protection"] = [False, True]
    return change


def forward_only_crossed(session: Session, service: str, current: str, target: str) -> list[str]:
    """The published versions in ``(target, current]`` that declare forward-only migrations."""
    records = {r.version: r for r in versions_of(session, service)}
    return [
        v
        for v in crossed_by_rollback(current, target, records)
        if records[v].to_release().version.forward_only_migrations
    ]


def _check_data_loss(session: Session, instance: Instance, target: str, revision: int) -> None:
    crossed = forward_only_crossed(session, instance.service, instance.version, target)
    if not crossed:
        return
    names = ", ".join(crossed)
    raise DataLossRefused(
        f"Rolling {instance.name!r} back from {instance.service} {instance.version} to "
        f"{target} goes back across {names}: upgrading into {names} migrated the data "
        f"forward only, so {target} cannot use the database as it is now; the rollback "
        "would lose data unless a backup from before the upgrade is restored.",
        errors=[ErrorItem("version", f"forward-only migrations in {names}")],
        hint=f"cityctl instance rollback {instance.name} --revision {revision} --allow-data-loss",
        extra={"forwardOnlyVersions": crossed},
    )


def _storage_warnings(session: Session, instance: Instance, plan: Plan) -> list[str]:
    """Volumes never shrink: say so when the chosen plan has less storage than they keep."""
    warning = kept_storage_warning(plan, storage_floor(session, instance.id))
    return [warning] if warning else []


def delete_instance(
    session: Session,
    *,
    instance: Instance,
    expected_generation: int | None = None,
    purge: bool = False,
) -> Change:
    """Request deletion (idempotent): retained (workloads stopped, data kept until
    ``purge_after``), or with ``purge`` everything at once, which frees the name.

    Refused (:class:`DeletionProtected`) while the instance is protected: checked on the
    locked row, so a concurrent unprotect and delete cannot both pass unseen. A retained
    instance can be purged.
    """
    _lock(session, instance, expected_generation)
    _check_generation(instance, expected_generation)
    if instance.deletion_requested:
        return Change(instance=instance)
    if instance.purge_after is not None and not purge:
        return Change(instance=instance)
    if instance.deletion_protection:
        raise DeletionProtected(
            f"Instance {instance.name!r} is protected against deletion; nothing was changed.",
            hint=f"cityctl instance unprotect {instance.name}",
            extra={"instance": instance.name},
        )
    instance.updated_at = utcnow()
    if purge:
        retention.request_purge(session, instance)
        return Change(instance=instance, diff={"deletion_requested": [False, True]})
    instance.purge_after = retention.purge_date(session, instance, instance.updated_at)
    # Deleting until the reconciler has stopped the workloads: only then is it Retained
    # (a target error meanwhile keeps it Deleting, retried, never Retained by assumption).
    instance.phase = Phase.DELETING
    instance.message = "Stopping the workloads; the data is kept."
    instance.generation += 1
    session.add(instance)
    session.flush()
    _enqueue(session, instance, "retained")
    return Change(instance=instance, diff={"purge_after": [None, instance.purge_after]})


def restore_instance(
    session: Session,
    *,
    tenant: Tenant,
    instance: Instance,
    expected_generation: int | None = None,
) -> Change:
    """Bring a retained instance back: the reconciler applies its stack again on the kept
    volumes. Refused (:class:`InstanceNotRetained`) for any other instance, and while the
    tenant is not active (its workloads would start again)."""
    _lock(session, instance, expected_generation)
    _check_generation(instance, expected_generation)
    admission.check_tenant_active(tenant)
    if instance.deletion_requested:
        raise InstanceBeingDeleted(f"Instance {instance.name!r} is being deleted.")
    if instance.purge_after is None:
        raise InstanceNotRetained(
            f"Instance {instance.name!r} is not retained (phase {instance.phase}): only an "
            "instance deleted without --purge can be restored, before its purge date.",
            extra={"instance": instance.name},
        )
    old = instance.purge_after
    instance.purge_after = None
    instance.phase = Phase.PROVISIONING
    instance.message = "Restoring: the workloads start again on the kept volumes."
    instance.generation += 1
    instance.updated_at = utcnow()
    session.add(instance)
    session.flush()
    _enqueue(session, instance, "restored")
    return Change(instance=instance, diff={"purge_after": [old, None]})


def set_deletion_protection(session: Session, *, instance: Instance, protected: bool) -> Change:
    """Protect an instance against deletion, or lift the protection (idempotent).

    Not desired state of the stack: no new generation, nothing queued. The diff is empty
    when nothing changes, so the caller audits only real changes. An instance being
    deleted cannot be protected any more (its deletion already passed the check).
    """
    _lock(session, instance, None)
    if protected:
        _check_alive(instance)
    old = instance.deletion_protection
    if old == protected:
        return Change(instance=instance)
    instance.deletion_protection = protected
    instance.updated_at = utcnow()
    session.add(instance)
    session.flush()
    return Change(instance=instance, diff={"deletion_protection": [old, protected]})


def rotate_credentials(
    session: Session, *, instance: Instance, expected_generation: int | None = None
) -> Change:
    """Replace the administrator credential: a new desired state (the reconciler applies
    the re-derived Secret). The caller checks that the service declares one."""
    _lock(session, instance, expected_generation)
    _check_generation(instance, expected_generation)
    if instance.deletion_requested:
        raise Conflict(
            f"Instance {instance.name!r} is being deleted.",
            hint="Its credentials go with it.",
        )
    old = instance.credentials_rotation
    instance.credentials_rotation = old + 1
    instance.generation += 1
    instance.updated_at = utcnow()
    session.add(instance)
    session.flush()
    _enqueue(session, instance, "credentials rotated")
    return Change(instance=instance, diff={"credentials_rotation": [old, old + 1]})


#: The reconcile reason of an instance whose published release was corrected.
RELEASE_CORRECTED = "release corrected"


def pick_up_corrected_release(session: Session, *, service: str, version: str) -> list[Instance]:
    """A new generation for every live instance of ``service`` ``version``, each enqueued.

    Called after the published release of that version was corrected
    (``catalog.publishing``, outcome ``corrected``): the instances' inputs are unchanged,
    but what they render is not, so the reconciler must apply it and record a revision.
    Instances whose deletion was requested are left alone. Rows are locked one by one (in
    id order) and checked again under the lock, so a concurrent change either comes first
    (and the instance may no longer be on this version) or gets the next generation.
    """
    ids = session.exec(
        select(Instance.id)
        .where(
            Instance.service == service,
            Instance.version == version,
            col(Instance.deleted_at).is_(None),
            col(Instance.deletion_requested).is_(False),
        )
        .order_by(col(Instance.id))
    ).all()
    changed: list[Instance] = []
    for instance_id in ids:
        row = lock_row(session, Instance, instance_id)
        if (
            row is None
            or row.deleted_at is not None
            or row.deletion_requested
            or (row.service, row.version) != (service, version)
        ):
            continue
        row.generation += 1
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
        queueing.enqueue(session, row.id, reason=RELEASE_CORRECTED)
        changed.append(row)
    session.flush()
    return changed


def _apply(
    session: Session,
    instance: Instance,
    desired: dict[str, Any],
    warnings: list[str],
    *,
    reason: str,
) -> Change:
    diff = {k: [getattr(instance, k), v] for k, v in desired.items() if getattr(instance, k) != v}
    if not diff:
        # Nothing changes: no new generation, no reconcile request (PATCH is idempotent).
        return Change(instance=instance, warnings=warnings)
    for key, (_old, new) in diff.items():
        setattr(instance, key, new)
    instance.generation += 1
    instance.updated_at = utcnow()
    session.add(instance)
    session.flush()
    _enqueue(session, instance, reason[:40])
    return Change(instance=instance, warnings=warnings, diff=diff)


def _enqueue(session: Session, instance: Instance, reason: str) -> None:
    """Make the instance's one reconcile request due now (``queueing.enqueue``: a lease a
    worker holds is kept; it finishes and, seeing the new generation, keeps the request due
    now) and wake the workers of every process on commit (PostgreSQL)."""
    queueing.enqueue(session, instance.id, reason=reason)
    session.flush()


def instance_by_id(session: Session, instance_id: uuid.UUID) -> Instance | None:
    return session.get(Instance, instance_id)


#: What replaces every value of a Secret's ``data`` and ``stringData`` in a dry run.
REDACTED = "<redacted>"


def dry_run_objects(
    session: Session,
    tenant: Tenant,
    instance: Instance,
    *,
    renderer_for: Callable[[str], Renderer],
) -> list[dict[str, Any]]:
    """The objects the reconciler would apply for ``instance`` as it stands in this session.

    For a dry run, before its transaction is rolled back. Rendered like the reconciler does
    (the target's Kubernetes version, the storage floor), but Secret values are redacted:
    a dry run shows what would be applied, never a credential.
    """
    record = find_version(session, instance.service, instance.version)
    if record is None:  # admission just accepted it: only a concurrent unpublish gets here
        raise InvalidInput(f"{instance.service} {instance.version} is not published.")
    target = session.exec(select(Target).where(Target.name == instance.target)).first()
    rendered = renderer_for(
        target.kubernetes_version if target else DEFAULT_KUBERNETES_VERSION
    ).render(
        record.to_release(),
        plan=instance.plan,
        tenant=tenant_ref(tenant),
        instance=instance_ref(instance),
        parameters=instance.parameters,
        storage_floor=storage_floor(session, instance.id),
        tls=TlsIssuer.from_config(target.config if target else None),
        target=target_ref(target),
    )
    return [_redacted(obj) for obj in rendered.objects]


def _redacted(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    if out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if isinstance(out.get(key), Mapping):
                out[key] = dict.fromkeys(out[key], REDACTED)
    return out
