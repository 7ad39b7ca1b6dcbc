"""The reconciler: make one instance's desired state true on its target.

Level-based and idempotent. For one claimed request it loads the instance, its tenant,
target, pinned published release and last applied revision, then:

- deletion requested → ask the target to remove the namespace / instance folder; while the
  target still removes it (a namespace terminating), phase ``Deleting`` with what was seen,
  checked again after a short backoff; once it is gone, phase ``Deleted``, ``deleted_at``
  (the name is free again), usage event ``stopped``;
- retained (deleted without purge, ``purge_after`` set) → apply only the stack's data
  objects (volumes, Secrets, namespace: ``retention.data_stack``) and prune the rest; phase
  ``Retained``, usage event ``retained`` (storage only is billed); no periodic resync;
- the generation was already applied (a resync) → check drift with reads only; re-apply just
  the drifted objects; nothing drifted means **zero writes** to the target and no revision;
- otherwise → render, apply only the objects whose digest differs from the last revision's
  inventory or from what is live (an interrupted attempt may have left objects of a
  generation never recorded), prune what the stack no longer has, observe readiness and
  record a new revision (``rollback_of`` when it re-applies an earlier revision's inputs),
  with ``started`` and ``plan_changed`` usage events.

A worker hands the reconciler a whole claimed batch: it loads the batch with one query per
table, works on the targets (GitOps folders concurrently in a thread pool; the renders of
new generations in the worker's render processes, when it has them), each claim's work
coming to one plain ``Step`` record, then records status, revisions, usage events and the
queue's next due times of the whole batch in one transaction (one function, ``_record``,
writes a step) — each instance's part only while this worker still holds its lease (the
worker's heartbeat renews it; an instance whose lease was taken over gets no further step). Render
and admission errors fail the instance with the message and back off long (no retry
storm); target errors keep the phase and retry with backoff.

This module must not know about HTTP, FastAPI, Typer or how workers are scheduled.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlmodel import Session, col

from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.records import PublishedVersion
from controlplane.db.engine import is_postgres
from controlplane.db.types import new_id, utcnow
from controlplane.errors import ControlPlaneError, InvalidInput
from controlplane.provisioning import queueing, retention
from controlplane.provisioning.models import (
    Instance,
    Phase,
    ReconcileRequest,
    Revision,
    RevisionOutcome,
    Target,
    UsageEvent,
    UsageKind,
)
from controlplane.provisioning.queueing import Backoff, Claim
from controlplane.provisioning.render_pool import Pending, Rendered, RenderPool, RenderTask
from controlplane.provisioning.render_refs import instance_ref, target_ref, tenant_ref
from controlplane.provisioning.targets import (
    Deletion,
    Readiness,
    Stack,
    StackTarget,
    TargetRejected,
)
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.volumes import floor_of, kept_storage_warning
from controlplane.rendering.renderer import Renderer
from controlplane.rendering.tls import TlsIssuer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.models import Tenant

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    APPLIED = "applied"  # a new generation was applied (a revision was written)
    UNCHANGED = "unchanged"  # resync: nothing drifted, nothing written
    REPAIRED = "repaired"  # resync: drifted objects re-applied
    DELETED = "deleted"
    FAILED = "failed"  # render/admission error: needs a change of input
    RETRY = "retry"  # target error: retried with backoff
    DELETING = "deleting"  # deletion requested, the target still removes it: checked later
    RETAINED = "retained"  # deleted without purge: workloads pruned, data objects kept
    LOST = "lost"  # the lease was taken over: nothing recorded
    GONE = "gone"  # the instance no longer exists


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    instance_id: uuid.UUID
    generation: int = 0
    written: int = 0
    pruned: int = 0
    message: str = ""


@dataclass(frozen=True)
class ReconcileSettings:
    #: Periodic resync after success (drift detection).
    resync_seconds: float = 600.0
    #: Re-check of a stack whose workloads are not ready yet.
    not_ready_seconds: float = 10.0
    #: Target errors (unreachable, 5xx, conflicts).
    retry: Backoff = field(default_factory=lambda: Backoff(base=2.0, cap=300.0))
    #: Render or admission errors: waiting rarely helps, so back off long.
    failed: Backoff = field(default_factory=lambda: Backoff(base=60.0, cap=3600.0))
    #: Checks of a deletion under way (a namespace terminating): soon, then less often.
    #: Checks of a deletion under way: one GET each, and a user waits on them, so they stay
    #: frequent (a namespace usually goes in seconds; one stuck on finalizers costs a GET
    #: every 10 s at most).
    deleting: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=10.0))


@dataclass
class _Loaded:
    instance: Instance
    tenant: Tenant
    target_row: Target | None
    published: PublishedVersion | None
    last: Revision | None
    max_number: int
    history: list[Revision]
    #: The render started in a render process for this batch, if any.
    pending: Pending | None = None


#: Condition type → (status, reason, message), as ``_set_status`` merges them.
Conditions = Mapping[str, tuple[bool, str, str]]

#: Outcomes whose record only makes sense on an existing instance row: when the row is
#: gone, nothing is recorded (the request's lease expires and the next claim removes it).
_ON_THE_INSTANCE = frozenset({Outcome.APPLIED, Outcome.DELETED, Outcome.DELETING, Outcome.RETAINED})


@dataclass(frozen=True)
class NewRevision:
    """The revision an apply records; its number is taken from the table when recorded."""

    generation: int
    version: str
    plan: str
    parameters: dict[str, Any]
    digest: str
    inventory: dict[str, str]
    storage: str
    message: str
    rollback_of: int | None


@dataclass(frozen=True)
class Step:
    """What the work on one claim came to, as plain data: everything ``_record`` writes.

    The work step (reads and target I/O, no database writes) returns one per claim; the
    batch's transaction records them all, each only while its lease is still held. Being
    plain data, a step can be recorded again in a transaction of its own when the batch's
    fails.
    """

    claim: Claim
    outcome: Outcome
    #: The generation worked on (the status' ``observedGeneration``).
    generation: int = 0
    #: The instance's new phase and conditions (None: the status is left as it is).
    phase: Phase | None = None
    conditions: Conditions = field(default_factory=dict)
    #: The status message (None: derived from the conditions) and the result's.
    message: str | None = None
    revision: NewRevision | None = None
    #: Usage events; ``stopped`` only for an instance that ever started, and only once.
    usage: tuple[UsageKind, ...] = ()
    #: The instance is gone from its target: ``deleted_at`` is set, the request removed.
    deleted: bool = False
    #: Seconds until the next visit (None: the request is removed) ...
    next_due_in: float | None = None
    #: ... unless the visits back off with the request's attempts (failures, deletions).
    backoff: Backoff | None = None
    failed: bool = False
    reason: str | None = None
    written: int = 0
    pruned: int = 0
    #: When the work was done: the time of the revision, usage events and deletion.
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class _Locked:
    """A batch's instance and request rows, locked (PostgreSQL) and loaded one query each.

    A request is None when this worker no longer holds its lease.
    """

    instances: dict[uuid.UUID, Instance]
    requests: dict[uuid.UUID, ReconcileRequest | None]
    #: The highest revision number of each instance that adds a revision (0: none yet).
    revisions: dict[uuid.UUID, int]


@dataclass
class _Inserts:
    """The revisions and usage events a transaction adds, written by one INSERT per table
    before it commits: an ORM object per row cost about 0.3 ms of the worker's CPU per
    instance of a cold fleet. No record of the batch reads what another one adds."""

    revisions: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)

    def write(self, session: Session) -> None:
        if self.revisions:
            session.execute(insert(Revision), self.revisions)
        if self.usage:
            session.execute(insert(UsageEvent), self.usage)


@dataclass(frozen=True)
class Prepared:
    """A batch loaded by ``Reconciler.prepare``, its renders under way (opaque to callers)."""

    loaded: dict[uuid.UUID, _Loaded]


class _LeaseLost(Exception):
    """Another worker holds this instance's lease now: stop working on it."""


class Reconciler:
    """Reconciles one claimed request at a time; safe to share between worker threads."""

    def __init__(
        self,
        engine: Engine,
        *,
        server_secret: bytes,
        targets: TargetRegistry | None = None,
        settings: ReconcileSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.targets = targets or TargetRegistry()
        self.settings = settings or ReconcileSettings()
        self._server_secret = server_secret
        self._renderers: dict[str, Renderer] = {}
        self._releases: dict[tuple[str, str, str], ServiceRelease] = {}
        self._lock = threading.Lock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        # The lease check of the claim the current thread works on (between target steps).
        self._fence = threading.local()

    @property
    def server_secret(self) -> bytes:
        """The secret renders derive credentials from (render processes need it too)."""
        return self._server_secret

    # -- caches (published releases are immutable; renderers hold compiled templates)
    def renderer(self, kubernetes_version: str) -> Renderer:
        with self._lock:
            renderer = self._renderers.get(kubernetes_version)
            if renderer is None:
                renderer = Renderer(
                    server_secret=self._server_secret, kubernetes_version=kubernetes_version
                )
                self._renderers[kubernetes_version] = renderer
            return renderer

    def _release(self, published: PublishedVersion) -> ServiceRelease:
        key = (published.service, published.version, published.digest)
        with self._lock:
            release = self._releases.get(key)
        if release is None:
            release = published.to_release()
            with self._lock:
                self._releases[key] = release
        return release

    # -- the reconcile
    def reconcile(self, held: Claim) -> Result:
        """Reconcile one claim (a batch of one)."""
        result = self.reconcile_batch([held])[0]
        assert result is not None
        return result

    def reconcile_batch(
        self,
        claims: Sequence[Claim],
        *,
        pool: Executor | None = None,
        should_stop: Callable[[], bool] | None = None,
        lost: Callable[[Claim], bool] | None = None,
        renders: RenderPool | None = None,
        prepared: Prepared | None = None,
        ahead: Callable[[], None] | None = None,
    ) -> list[Result | None]:
        """Reconcile a batch of claims; results in the order of ``claims``.

        Three steps, so that a fleet reconcile costs a few queries per *batch* rather than
        per instance: load every instance, tenant, target, release and revision of the batch
        in one query each; work on the targets (in ``pool`` when the target allows it, which
        overlaps file I/O); then record every outcome in **one** transaction, each still
        guarded by its own lease check. A claim not started because ``should_stop`` said so
        is released untouched and its result is None. ``lost`` (the worker's heartbeat)
        says whether another worker took a lease over: such a claim gets no further step
        and records nothing. ``renders`` (render processes) renders the batch's new
        generations beside the target work, so that rendering uses every core.
        ``prepared``: the batch as ``prepare`` loaded it earlier (its renders under way).
        ``ahead`` runs once this batch's renders are under way, before its target work (the
        worker claims and prepares its next batch there, so that the render processes
        render it while this one is written and recorded instead of waiting).
        """
        loaded = prepared.loaded if prepared is not None else self.prepare(claims, renders).loaded
        if ahead is not None:
            ahead()

        def work(held: Claim) -> Step | None:
            if should_stop is not None and should_stop():
                return None
            self._fence.lost = (lambda: lost(held)) if lost is not None else None
            try:
                self._check_lease(held)
                return self._work(held, loaded.get(held.instance_id))
            except _LeaseLost:
                return Step(
                    held,
                    Outcome.LOST,
                    message="Another worker took this instance's lease over; "
                    "this worker recorded nothing.",
                )
            except Exception as exc:
                if len(claims) == 1:
                    raise
                # A bug in one reconcile must not lose the batch's other records. This one
                # records nothing and keeps its lease, so it is retried when the lease
                # expires (not at once, which would spin on a deterministic bug).
                log.exception("reconcile crashed", extra={"instance_id": str(held.instance_id)})
                return Step(held, Outcome.LOST, message=f"Unexpected error, retried later: {exc}")
            finally:
                self._fence.lost = None

        steps: list[Step | None]
        # Threads overlap the target's file I/O with rendering in this process. With render
        # processes there is nothing left to overlap: several threads creating files cost
        # 2-4 times the CPU per file of one (a GIL hand-off at every system call), measured
        # on tmpfs and ext4 (docs/reconciling.md), so the worker's own thread does it all.
        if pool is not None and renders is None and len(claims) > 1:
            concurrent = [self._concurrent(loaded.get(held.instance_id)) for held in claims]
            futures = {i: pool.submit(work, held) for i, held in enumerate(claims) if concurrent[i]}
            steps = [
                futures[i].result() if i in futures else work(held) for i, held in enumerate(claims)
            ]
        else:
            steps = [work(held) for held in claims]
        for held, step in zip(claims, steps, strict=True):
            if step is None:
                queueing.release(self.engine, held)
        return self._finish_all(claims, steps)

    def prepare(self, claims: Sequence[Claim], renders: RenderPool | None = None) -> Prepared:
        """Load a batch (one query per table) and start its renders in ``renders``."""
        loaded = self._load_batch([held.instance_id for held in claims])
        if renders is not None and len(claims) > 1:
            self._prerender(loaded, renders)
        return Prepared(loaded)

    def _check_lease(self, held: Claim) -> None:
        """Raise ``_LeaseLost`` when the heartbeat found this claim's lease taken over."""
        lost: Callable[[], bool] | None = getattr(self._fence, "lost", None)
        if lost is not None and lost():
            log.warning(
                "lease lost: stopping work on this instance",
                extra={"instance_id": str(held.instance_id), "worker": held.owner},
            )
            raise _LeaseLost

    def _concurrent(self, loaded: _Loaded | None) -> bool:
        """Whether this instance's target work may run beside others' (GitOps: own folder).

        Only writes go to the pool, and only while the worker renders in its own process
        (``reconcile_batch``): they overlap the render. A resync's drift check is mostly
        Python (read, hash, compare), which threads only slow down by fighting for the GIL.
        """
        if loaded is None or loaded.target_row is None:
            return False
        last, instance = loaded.last, loaded.instance
        if last is not None and last.generation == instance.generation:
            return False
        return self._target_says(loaded.target_row, "concurrent_apply")

    def _target_says(self, row: Target, flag: str) -> bool:
        """A target's optional class flag (``concurrent_apply``, ``writes_yaml``); False for
        a target that cannot be built (its reconcile reports why)."""
        try:
            return bool(getattr(self.targets.get(row), flag, False))
        except ControlPlaneError:
            return False

    def _work(self, held: Claim, loaded: _Loaded | None) -> Step:
        """Everything but the database write: decide, render, write to the target."""
        if loaded is None:
            return Step(held, Outcome.GONE)
        instance = loaded.instance
        extra = {
            "instance_id": str(instance.id),
            "namespace": instance.namespace,
            "generation": instance.generation,
            "worker": held.owner,
        }
        try:
            if loaded.target_row is None:
                raise InvalidInput(
                    f"Instance {instance.namespace} names target {instance.target!r}, "
                    "which does not exist.",
                    hint="Create the target or move the instance to an existing one.",
                )
            target = self.targets.get(loaded.target_row)
            if instance.deletion_requested:
                return self._delete(held, loaded, target)
            if instance.purge_after is not None:
                return self._retain(held, loaded, target)
            return self._converge(held, loaded, target)
        except TargetRejected as exc:
            log.warning("reconcile rejected by target", extra={**extra, "error": exc.detail})
            return self._failed(held, loaded, "Applied", exc.reason, exc)
        except InvalidInput as exc:
            log.warning("reconcile failed", extra={**extra, "error": exc.detail})
            return self._failed(held, loaded, "Rendered", "RenderFailed", exc)
        except ControlPlaneError as exc:
            log.info("reconcile will be retried", extra={**extra, "error": exc.detail})
            return self._retry(held, loaded, exc)

    def _finish_all(
        self, claims: Sequence[Claim], steps: Sequence[Step | None]
    ) -> list[Result | None]:
        """Record the batch in one transaction; one transaction each if that fails.

        The batch locks its instance rows, then its request rows: the order in which the
        API writes them (a change bumps the generation, then makes the request due), so a
        change racing a finish waits instead of deadlocking. Instances are taken in id
        order, so two workers finishing overlapping batches (a lease taken over) cannot
        deadlock either.
        """
        order = sorted(
            (i for i, step in enumerate(steps) if step is not None),
            key=lambda i: str(claims[i].instance_id),
        )
        results: list[Result | None] = [None] * len(claims)
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                held = [claims[i] for i in order]
                locked = _Locked(
                    instances=_lock_instances(session, [c.instance_id for c in held]),
                    requests=queueing.lock_batch_for_finish(session, held),
                    revisions=_last_revision_numbers(
                        session,
                        [claims[i].instance_id for i in order if _adds(steps[i])],
                    ),
                )
                # One flush at commit lets SQLAlchemy batch the inserts and updates of the
                # whole batch; no record reads what another one wrote (one row per instance).
                inserts = _Inserts()
                with session.no_autoflush:
                    for i in order:
                        step = steps[i]
                        assert step is not None
                        results[i] = self._record(session, step, inserts, locked)
                inserts.write(session)
                session.commit()
            return results
        except Exception:
            if len(order) == 1:
                raise
            log.warning("recording a batch failed; recording each reconcile alone", exc_info=True)
        for i in order:
            step = steps[i]
            assert step is not None
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    inserts = _Inserts()
                    results[i] = self._record(session, step, inserts)
                    inserts.write(session)
                    session.commit()
            except Exception as exc:  # one bad row must not lose the others' records
                log.exception(
                    "recording a reconcile failed",
                    extra={"instance_id": str(claims[i].instance_id)},
                )
                results[i] = Result(Outcome.LOST, claims[i].instance_id, message=str(exc))
        return results

    def _record(
        self, session: Session, step: Step, inserts: _Inserts, locked: _Locked | None = None
    ) -> Result:
        """Record one step in ``session``'s transaction, only while its lease is held.

        ``inserts``: where the rows it adds go (the caller writes them before it commits).
        ``locked``: the batch's rows, locked up front; without it the instance row, then the
        request row are locked here.
        """
        held = step.claim
        if step.outcome == Outcome.LOST:  # nothing may be recorded
            return Result(Outcome.LOST, held.instance_id, message=step.message or "")
        if locked is not None:
            request = locked.requests.get(held.request_id)
        else:
            _lock_instance(session, held.instance_id)
            request = queueing.lock_for_finish(session, held)
        if step.outcome == Outcome.GONE:
            if request is not None:
                session.delete(request)
            return Result(Outcome.GONE, held.instance_id)
        if request is None:
            return Result(Outcome.LOST, held.instance_id, step.generation)
        row = (
            locked.instances.get(held.instance_id)
            if locked is not None
            else session.get(Instance, held.instance_id)
        )
        if row is None and step.outcome in _ON_THE_INSTANCE:
            return Result(Outcome.GONE, held.instance_id)
        if row is not None:
            if step.revision is not None:
                last = locked.revisions.get(row.id) if locked is not None else None
                row.current_revision = _add_revision(
                    session, inserts, row, step.revision, step.at, last
                )
            usage = step.usage
            if (
                step.revision is not None
                and not usage
                and _last_usage(session, row) == UsageKind.RETAINED
            ):
                usage = (UsageKind.PLAN_CHANGED,)  # restored: the workloads run again
            for kind in usage:
                _add_usage(session, inserts, row, kind, step)
            if step.phase is not None:
                _set_status(row, step.phase, step.conditions, step.generation, message=step.message)
            if step.deleted:
                row.deleted_at = step.at
            session.add(row)
        next_due_in = (
            step.backoff.delay(request.attempts + 1, self._rng)
            if step.backoff is not None
            else step.next_due_in
        )
        queueing.finish(
            session,
            request,
            reconciled_generation=step.generation,
            next_due_in=next_due_in,
            failed=step.failed,
            current_generation=row.generation if row is not None else None,
            reason=step.reason,
        )
        return Result(
            step.outcome,
            held.instance_id,
            step.generation,
            written=step.written,
            pruned=step.pruned,
            message=step.message or "",
        )

    def _load_batch(self, instance_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, _Loaded]:
        """Everything the batch needs, in one query per table (not five per instance)."""
        if not instance_ids:
            return {}
        with Session(self.engine, expire_on_commit=False) as session:
            instances = [
                row
                for row in session.execute(
                    select(Instance).where(col(Instance.id).in_(set(instance_ids)))
                ).scalars()
                if row.deleted_at is None
            ]
            if not instances:
                return {}
            tenants = {
                row.id: row
                for row in session.execute(
                    select(Tenant).where(col(Tenant.id).in_({i.tenant_id for i in instances}))
                ).scalars()
            }
            targets = {
                row.name: row
                for row in session.execute(
                    select(Target).where(col(Target.name).in_({i.target for i in instances}))
                ).scalars()
            }
            wanted = {(i.service, i.version) for i in instances}
            published = {
                (row.service, row.version): row
                for row in session.execute(
                    select(PublishedVersion).where(
                        col(PublishedVersion.service).in_({s for s, _ in wanted}),
                        col(PublishedVersion.version).in_({v for _, v in wanted}),
                    )
                ).scalars()
                if (row.service, row.version) in wanted
            }
            histories: dict[uuid.UUID, list[Revision]] = {}
            for revision in session.execute(
                select(Revision)
                .where(col(Revision.instance_id).in_({i.id for i in instances}))
                .order_by(col(Revision.instance_id), col(Revision.number).desc())
            ).scalars():
                histories.setdefault(revision.instance_id, []).append(revision)
            session.expunge_all()
        out: dict[uuid.UUID, _Loaded] = {}
        for instance in instances:
            tenant = tenants.get(instance.tenant_id)
            if tenant is None:
                continue
            history = histories.get(instance.id, [])
            applied = [r for r in history if r.outcome == RevisionOutcome.APPLIED]
            out[instance.id] = _Loaded(
                instance=instance,
                tenant=tenant,
                target_row=targets.get(instance.target),
                published=published.get((instance.service, instance.version)),
                last=applied[0] if applied else None,
                max_number=history[0].number if history else 0,
                history=applied,
            )
        return out

    def _render_task(self, loaded: _Loaded) -> RenderTask:
        """The inputs of one render (what a render process needs, the release by key)."""
        instance, tenant = loaded.instance, loaded.tenant
        if loaded.published is None:
            raise InvalidInput(
                f"{instance.service} {instance.version} is not published.",
                hint="Publish that catalogue version, or change the instance to a published one.",
            )
        published = loaded.published
        return RenderTask(
            release_key=(published.service, published.version, published.digest),
            kubernetes_version=(
                loaded.target_row.kubernetes_version
                if loaded.target_row
                else DEFAULT_KUBERNETES_VERSION
            ),
            plan=instance.plan,
            tenant=tenant_ref(tenant),
            instance=instance_ref(instance),
            parameters=dict(instance.parameters),
            storage_floor=floor_of(loaded.history),
            tls=TlsIssuer.from_config(loaded.target_row.config if loaded.target_row else None),
            target=target_ref(loaded.target_row),
        )

    def _prerender(self, loaded: dict[uuid.UUID, _Loaded], renders: RenderPool) -> None:
        """Start the batch's renders of new generations in the render processes."""
        for item in loaded.values():
            instance, last = item.instance, item.last
            if instance.deletion_requested or item.published is None or item.target_row is None:
                continue
            if last is not None and last.generation == instance.generation:
                continue  # a resync renders only when something drifted
            # A target that writes YAML files gets it made in the child (``Stack.yaml``).
            yaml = self._target_says(item.target_row, "writes_yaml")
            task = replace(self._render_task(item), yaml=yaml)
            item.pending = renders.submit(task, item.published.release)

    def _render(self, loaded: _Loaded) -> tuple[Stack, str]:
        """The stack and the storage its volumes were rendered with.

        The storage floor comes from the applied history, so a plan change down (or a
        rollback to a smaller plan) never asks a volume to shrink, and a resync renders
        exactly what the last revision applied. A render started in a render process is
        taken from there; one that failed there is rendered here (raising its error).
        """
        instance, tenant = loaded.instance, loaded.tenant
        pending, loaded.pending = loaded.pending, None
        done = pending.result() if pending is not None else None
        if done is None:
            task = self._render_task(loaded)
            assert loaded.published is not None
            rendered = self.renderer(task.kubernetes_version).render(
                self._release(loaded.published),
                plan=task.plan,
                tenant=task.tenant,
                instance=task.instance,
                parameters=task.parameters,
                storage_floor=task.storage_floor,
                tls=task.tls,
                target=task.target,
            )
            done = Rendered(
                namespace=rendered.namespace,
                objects=rendered.objects,
                digests=rendered.object_digests(),
                digest=rendered.digest,
                storage=rendered.storage,
            )
        stack = Stack(
            tenant=tenant.slug,
            instance=instance.name,
            instance_id=str(instance.id),
            namespace=done.namespace,
            objects=done.objects,
            digests=done.digests,
            digest=done.digest,
            yaml=done.yaml,
        )
        return stack, done.storage

    def _converge(self, held: Claim, loaded: _Loaded, target: StackTarget) -> Step:
        instance, last = loaded.instance, loaded.last
        if last is not None and last.generation == instance.generation:
            return self._resync(held, loaded, target, last)
        stack, storage = self._render(loaded)
        previous = dict(last.inventory) if last is not None else {}
        changed = {oid for oid, digest in stack.digests.items() if previous.get(oid) != digest}
        if last is not None:
            # An attempt cut off mid-apply (a killed worker, a lost lease) may have left
            # objects of a generation that was never recorded; a change back to the last
            # revision's inputs would then skip them. So what differs live is applied too
            # (reads only; found by the soak on the real cluster).
            changed |= target.drifted(stack)
        report = target.apply(stack, only=changed)
        # A worker that took the lease over may be applying a newer generation: never prune
        # (delete) what it may have just written.
        self._check_lease(held)
        pruned = target.prune(stack, previous=list(previous))
        readiness = target.readiness(stack)
        note = self._kept_storage_note(loaded)
        applied = f"Applied {len(report.written)} changed object(s), pruned {len(pruned)}."
        phase, conditions = _phase_for(
            readiness, applied_message=f"{applied} {note}" if note else applied
        )
        # Usage follows what was applied (the inputs loaded for this render), not the
        # desired state re-read when recording, which a tenant may have changed meanwhile.
        usage: tuple[UsageKind, ...] = ()
        if last is None:
            usage = (UsageKind.STARTED,)
        elif last.plan != instance.plan:
            usage = (UsageKind.PLAN_CHANGED,)
        return Step(
            held,
            Outcome.APPLIED,
            instance.generation,
            phase=phase,
            conditions=conditions,
            revision=NewRevision(
                generation=instance.generation,
                version=instance.version,
                plan=instance.plan,
                parameters=instance.parameters,
                digest=stack.digest,
                inventory=dict(stack.digests),
                storage=storage,
                message=conditions["Applied"][2],
                rollback_of=_rollback_of(loaded),
            ),
            usage=usage,
            next_due_in=(
                self.settings.resync_seconds if readiness.ready else self.settings.not_ready_seconds
            ),
            written=len(report.written),
            pruned=len(pruned),
        )

    def _kept_storage_note(self, loaded: _Loaded) -> str | None:
        """Why the volumes are larger than the plan's, when they are (volumes never shrink)."""
        if loaded.published is None:
            return None
        plan = self._release(loaded.published).plan(loaded.instance.plan)
        return kept_storage_warning(plan, floor_of(loaded.history)) if plan else None

    def _resync(self, held: Claim, loaded: _Loaded, target: StackTarget, last: Revision) -> Step:
        instance = loaded.instance
        if target.drift_needs_objects:
            stack, _storage = self._render(loaded)
        else:
            # The inputs are those of the last revision, so its inventory is the render.
            stack = Stack(
                tenant=loaded.tenant.slug,
                instance=instance.name,
                instance_id=str(instance.id),
                namespace=instance.namespace,
                objects=(),
                digests=dict(last.inventory),
            )
        drift = target.drifted(stack)
        written = 0
        if drift:
            if not stack.objects:
                stack, _storage = self._render(loaded)
            written = len(target.apply(stack, only=drift).written)
            target.prune(stack, previous=list(last.inventory))
        readiness = target.readiness(stack)
        # The kept-storage note of a plan change down stays as long as the volumes are kept.
        note = self._kept_storage_note(loaded)
        applied = "Objects are as declared." + (f" {note}" if note else "")
        phase, conditions = _phase_for(readiness, applied_message=applied)
        if drift:
            conditions["Applied"] = (
                True,
                "DriftRepaired",
                f"Re-applied {len(drift)} object(s) that had drifted: "
                + ", ".join(sorted(drift)[:5])
                + ("…" if len(drift) > 5 else ""),
            )
        return Step(
            held,
            Outcome.REPAIRED if drift else Outcome.UNCHANGED,
            instance.generation,
            phase=phase,
            conditions=conditions,
            next_due_in=(
                self.settings.resync_seconds if readiness.ready else self.settings.not_ready_seconds
            ),
            written=written,
        )

    def _delete(self, held: Claim, loaded: _Loaded, target: StackTarget) -> Step:
        """Level-based: ask the target to remove the instance; ``Deleted`` once it is gone.

        The target never waits (a namespace may take minutes to terminate): while it still
        removes the instance, the phase stays ``Deleting`` with what the target saw, and the
        request comes back after the ``deleting`` backoff to look again.
        """
        instance = loaded.instance
        deletion = target.delete(
            tenant=loaded.tenant.slug, instance=instance.name, namespace=instance.namespace
        )
        if deletion is not None and not deletion.gone:
            return self._deleting(held, loaded, deletion)
        return Step(
            held,
            Outcome.DELETED,
            instance.generation,
            phase=Phase.DELETED,
            conditions={
                "Rendered": (True, "Deleted", "The instance was deleted."),
                "Applied": (False, "Deleted", f"Namespace {instance.namespace} was removed."),
                "Ready": (False, "Deleted", "The instance was deleted."),
            },
            usage=(UsageKind.STOPPED,),
            deleted=True,
            next_due_in=None,
        )

    def _retain(self, held: Claim, loaded: _Loaded, target: StackTarget) -> Step:
        """Keep the data objects of the stack, prune the rest (workloads stop).

        No revision is recorded: the last one still says what a restore applies, and the
        restore's new generation applies what is missing (found as drift).
        """
        instance, last = loaded.instance, loaded.last
        stack, _storage = self._render(loaded)
        kept = retention.data_stack(stack)
        # Volumes are kept as they are: a plan change that never applied must not grow them
        # now (the quota that would allow it is not kept either, so the target would refuse
        # it forever), and a claim that is gone would come back empty. Restore applies them.
        written = target.apply(kept, only=retention.to_write(target.drifted(kept))).written
        # Never prune what a worker that took the lease over may have just written.
        self._check_lease(held)
        pruned = target.prune(kept, previous=list(last.inventory) if last is not None else [])
        until = f"{instance.purge_after:%Y-%m-%d %H:%M} UTC" if instance.purge_after else "?"
        message = (
            f"Deleted; the data is retained until {until}: "
            f"`cityctl instance restore {instance.name}` brings the instance back, "
            f"`cityctl instance delete {instance.name} --purge` removes it now."
        )
        return Step(
            held,
            Outcome.RETAINED,
            instance.generation,
            phase=Phase.RETAINED,
            conditions={
                "Applied": (
                    True,
                    "Retained",
                    f"Kept {len(kept.digests)} data object(s), pruned {len(pruned)}.",
                ),
                "Ready": (False, "Retained", message),
            },
            message=message,
            usage=(UsageKind.RETAINED,),
            next_due_in=None,
            written=len(written),
            pruned=len(pruned),
        )

    def _deleting(self, held: Claim, loaded: _Loaded, deletion: Deletion) -> Step:
        message = deletion.message or "Deletion requested; the target is still removing it."
        return Step(
            held,
            Outcome.DELETING,
            loaded.instance.generation,
            phase=Phase.DELETING,
            conditions={
                "Applied": (False, "Deleting", message),
                "Ready": (False, "Deleting", "The instance is being deleted."),
            },
            message=message,
            backoff=self.settings.deleting,
            failed=True,  # attempts grow: the checks back off
            reason=queueing.DELETING,
        )

    def _failed(
        self, held: Claim, loaded: _Loaded, step: str, reason: str, exc: ControlPlaneError
    ) -> Step:
        message = _message(exc)
        conditions: dict[str, tuple[bool, str, str]] = {}
        if step == "Rendered":
            conditions["Rendered"] = (False, reason, message)
            conditions["Applied"] = (False, "NotRendered", "Nothing was applied: rendering failed.")
        else:
            conditions["Rendered"] = (True, "Rendered", "The stack rendered.")
            conditions["Applied"] = (False, reason, message)
        conditions["Ready"] = (False, reason, message)
        return Step(
            held,
            Outcome.FAILED,
            loaded.instance.generation,
            phase=Phase.FAILED,
            conditions=conditions,
            message=message,
            backoff=self.settings.failed,
            failed=True,
        )

    def _retry(self, held: Claim, loaded: _Loaded, exc: ControlPlaneError) -> Step:
        instance = loaded.instance
        message = _message(exc)
        settled = (Phase.READY, Phase.COMMITTED)
        phase = Phase.DEGRADED if instance.phase in settled else instance.phase
        if phase in (Phase.PENDING, Phase.FAILED):
            phase = Phase.PROVISIONING
        if instance.deletion_requested:
            phase = Phase.DELETING
        return Step(
            held,
            Outcome.RETRY,
            instance.generation,
            phase=phase,
            conditions={
                "Applied": (False, "TargetUnavailable", message + " Retrying with backoff.")
            },
            message=message,
            backoff=self.settings.retry,
            failed=True,
        )


# -- recording helpers


def _lock_instances(session: Session, instance_ids: list[uuid.UUID]) -> dict[uuid.UUID, Instance]:
    """Load (and on PostgreSQL lock) a batch's instance rows in one query, in id order."""
    query = select(Instance).where(col(Instance.id).in_(instance_ids)).order_by(col(Instance.id))
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        query = query.with_for_update()
    return {row.id: row for row in session.execute(query).scalars()}


def _lock_instance(session: Session, instance_id: uuid.UUID) -> None:
    """Lock the instance row before the request row (PostgreSQL; SQLite has one writer)."""
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        session.execute(
            select(col(Instance.id)).where(col(Instance.id) == instance_id).with_for_update()
        )


def _adds(step: Step | None) -> bool:
    """Whether recording ``step`` adds a revision."""
    return step is not None and step.outcome != Outcome.LOST and step.revision is not None


def _last_revision_numbers(session: Session, instance_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The highest revision number of each instance, in one query (0 for none yet).

    Read after the instance rows are locked, so no other finish adds one meanwhile."""
    if not instance_ids:
        return {}
    rows = session.execute(
        select(col(Revision.instance_id), func.max(Revision.number))
        .where(col(Revision.instance_id).in_(instance_ids))
        .group_by(col(Revision.instance_id))
    ).all()
    found = {instance_id: number for instance_id, number in rows}
    return {instance_id: int(found.get(instance_id) or 0) for instance_id in instance_ids}


def _add_revision(
    session: Session,
    inserts: _Inserts,
    row: Instance,
    new: NewRevision,
    at: datetime,
    last: int | None = None,
) -> int:
    """Add an applied revision; its number (returned) comes from the table, never reused.

    ``last``: the instance's highest number, when the batch read it already (locked)."""
    if last is None:
        last = (
            session.execute(
                select(func.max(Revision.number)).where(col(Revision.instance_id) == row.id)
            ).scalar()
            or 0
        )
    number = last + 1
    inserts.revisions.append(
        {
            "id": new_id(),
            "instance_id": row.id,
            "number": number,
            "generation": new.generation,
            "version": new.version,
            "plan": new.plan,
            "parameters": new.parameters,
            "digest": new.digest,
            "inventory": new.inventory,
            "storage": new.storage,
            "outcome": RevisionOutcome.APPLIED,
            "message": new.message,
            "rollback_of": new.rollback_of,
            "created_at": at,
        }
    )
    return number


def _add_usage(
    session: Session, inserts: _Inserts, row: Instance, kind: UsageKind, step: Step
) -> None:
    """Add a usage event: at the applied revision's plan, ``stopped`` at most once.

    ``stopped`` is billed only for an instance that ever started (an applied revision);
    ``retained`` once per retention, only after the instance ran.
    """
    if kind == UsageKind.RETAINED and (
        row.current_revision <= 0
        or _last_usage(session, row) in (None, UsageKind.RETAINED, UsageKind.STOPPED)
    ):
        return
    if kind == UsageKind.STOPPED:
        stopped = session.execute(
            select(func.count())
            .select_from(UsageEvent)
            .where(
                col(UsageEvent.instance_id) == row.id,
                col(UsageEvent.kind) == UsageKind.STOPPED,
            )
        ).scalar_one()
        if row.current_revision <= 0 or stopped:
            return
    plan = step.revision.plan if step.revision is not None else row.plan
    inserts.usage.append(
        {
            "id": new_id(),
            "instance_id": row.id,
            "tenant_id": row.tenant_id,
            "service": row.service,
            "plan": plan,
            "kind": kind,
            "at": step.at,
        }
    )


def _last_usage(session: Session, row: Instance) -> UsageKind | None:
    """The kind of the instance's latest usage event (None when it has none)."""
    kind = session.execute(
        select(col(UsageEvent.kind))
        .where(col(UsageEvent.instance_id) == row.id)
        .order_by(col(UsageEvent.at).desc())
        .limit(1)
    ).scalar()
    return UsageKind(kind) if kind is not None else None


# -- status helpers


def _phase_for(
    readiness: Readiness, *, applied_message: str
) -> tuple[Phase, dict[str, tuple[bool, str, str]]]:
    conditions: dict[str, tuple[bool, str, str]] = {
        "Rendered": (True, "Rendered", "The stack rendered and passed the platform policy."),
        "Applied": (True, "Applied", applied_message),
    }
    if readiness.ready and readiness.external:
        # Written where a controller elsewhere applies it; nothing observed it running, so
        # the Ready condition stays False and the phase says what is known: Committed.
        text = " ".join(readiness.messages) or "Committed; a GitOps controller applies it."
        conditions["Ready"] = (False, "NotObserved", text)
        return Phase.COMMITTED, conditions
    if readiness.ready:
        text = " ".join(readiness.messages) or "All workloads are ready."
        conditions["Ready"] = (True, "WorkloadsReady", text)
        return Phase.READY, conditions
    failed = readiness.failed
    text = "; ".join(readiness.messages[:5]) or "Workloads are not ready yet."
    conditions["Ready"] = (False, "WorkloadsFailed" if failed else "WorkloadsNotReady", text)
    return (Phase.DEGRADED if failed else Phase.PROVISIONING), conditions


def _set_status(
    row: Instance,
    phase: Phase,
    conditions: Conditions,
    generation: int,
    *,
    message: str | None = None,
) -> None:
    now = utcnow()
    old = {c.get("type"): c for c in row.conditions or []}
    merged: list[dict[str, Any]] = []
    for kind in ("Rendered", "Applied", "Ready"):
        if kind not in conditions:
            if kind in old:
                merged.append(old[kind])
            continue
        status, reason, text = conditions[kind]
        value = "True" if status else "False"
        previous = old.get(kind)
        since: str = now.isoformat()
        if previous is not None and previous.get("status") == value:
            since = str(previous.get("lastTransitionTime") or since)
        merged.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": text,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    if message is None and phase not in (Phase.READY, Phase.COMMITTED, Phase.DELETED):
        ready = conditions.get("Ready")
        message = ready[2] if ready else row.message
    changed = (
        row.phase != phase
        or row.observed_generation != generation
        or row.conditions != merged
        or row.message != message
    )
    if not changed:
        return
    row.phase = phase
    row.observed_generation = generation
    row.conditions = merged
    row.message = message
    row.updated_at = now


def _rollback_of(loaded: _Loaded) -> int | None:
    """The earlier revision whose inputs this generation re-applies (not the current one)."""
    instance, last = loaded.instance, loaded.last
    inputs = (instance.version, instance.plan, instance.parameters)
    if last is None or (last.version, last.plan, last.parameters) == inputs:
        return None
    for revision in loaded.history[1:]:
        if (revision.version, revision.plan, revision.parameters) == inputs:
            return revision.number
    return None


def _message(exc: ControlPlaneError) -> str:
    lines = [exc.detail, *(f"{item}" for item in exc.errors[:10])]
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return "\n".join(lines)
