"""What must hold after a soak has converged: the checks, on a plain snapshot.

The soak runner collects a :class:`Snapshot` from the database (instances, revisions, usage
events) and from the real cluster (every object the platform applied and labelled, every
namespace); :func:`check` returns every :class:`Violation`. Keeping the checks free of I/O
lets the tests feed them synthetic histories, so each rule is known to be able to fail.

Rules (docs/benchmarks.md, "Soak test"):

- ``converged``: every instance has ``observed_generation == generation`` and is ``Ready``,
  ``Retained`` when it was deleted without purge (``purge_after`` set), or ``Deleted`` when
  deletion (purge) was requested (and then carries ``deleted_at``);
- ``orphan``: every object labelled with an instance id belongs to a live or retained
  instance, sits in its namespace and is in the inventory of its last applied revision (a
  retained instance's data objects may predate any revision); deleted instances'
  namespaces are gone;
- ``retained``: a ``Retained`` instance has ``purge_after``, its namespace exists, every
  PersistentVolumeClaim of its last applied revision exists, and once converged nothing but
  data objects (Namespace, PersistentVolumeClaim, Secret, SealedSecret) of it remains;
- ``claims``: no claim is lost before purge: every claim the runner saw during the run
  (first UID seen) of an instance that was never purged still exists with that UID,
  restored instances included (unless a later revision of the stack no longer declares it);
- ``status``: a Ready instance's last applied revision has the desired version, plan and
  parameters, and every object of its inventory exists with the recorded digest;
- ``usage``: an instance's usage events are, in time order, ``started`` (once, with the first
  applied plan), one ``plan_changed`` per applied plan change (with the new plan), and
  ``stopped`` exactly when it was deleted after it had started, last; ``retained`` (a delete
  without purge) and the ``plan_changed`` of the restore that follows it at the same plan are
  set aside, and a converged Retained instance that ran has ``retained`` as its last event.

This module must not know about HTTP, PostgreSQL or the Kubernetes API.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class InstanceState:
    id: str
    tenant: str
    name: str
    namespace: str
    version: str
    plan: str
    parameters: Mapping[str, Any]
    generation: int
    observed_generation: int
    phase: str
    deletion_requested: bool
    deleted: bool
    #: Set while retained (deleted without purge).
    purge_after: datetime | None = None
    #: The ``Applied`` condition's status: a failed attempt (a target error, retried with
    #: backoff) records the generation too, and a retained instance keeps its phase then.
    applied: bool = True

    @property
    def retained(self) -> bool:
        """Deleted without purge (and not purged since)."""
        return self.purge_after is not None and not self.deletion_requested

    @property
    def label(self) -> str:
        return f"{self.tenant}/{self.name} ({self.id[:8]})"


@dataclass(frozen=True)
class RevisionState:
    instance_id: str
    number: int
    version: str
    plan: str
    parameters: Mapping[str, Any]
    #: Object id → digest of what was applied.
    inventory: Mapping[str, str]
    applied: bool = True


@dataclass(frozen=True)
class UsageState:
    instance_id: str
    kind: str  # started | plan_changed | stopped
    plan: str
    at: datetime


@dataclass(frozen=True)
class ClusterObject:
    object_id: str  # apiVersion/kind/name
    namespace: str | None
    instance_id: str | None  # the city-platform.be/instance-id label
    digest: str | None  # the city-platform.be/object-digest annotation
    uid: str | None = None  # metadata.uid


@dataclass
class Snapshot:
    instances: list[InstanceState] = field(default_factory=list)
    revisions: list[RevisionState] = field(default_factory=list)
    usage: list[UsageState] = field(default_factory=list)
    objects: list[ClusterObject] = field(default_factory=list)
    namespaces: set[str] = field(default_factory=set)
    #: Instance id → claim object id → the UID the runner saw first (during the run).
    seen_claims: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Ids of the instances the runner restored (202) during the run.
    restored: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.detail}"


READY, DELETED, RETAINED = "Ready", "Deleted", "Retained"
ANY_PLAN = "*"
#: What a retained instance keeps on its target (docs/data-safety.md, "Retention on delete").
DATA_KINDS = frozenset({"Namespace", "PersistentVolumeClaim", "Secret", "SealedSecret"})
CLAIM_KIND = "PersistentVolumeClaim"


def kind_of(object_id: str) -> str:
    """The kind of ``apiVersion/kind/name`` (the apiVersion may hold a slash itself)."""
    return object_id.rsplit("/", 2)[-2]


def _last_applied(revisions: Sequence[RevisionState]) -> RevisionState | None:
    applied = [r for r in revisions if r.applied]
    return max(applied, key=lambda r: r.number) if applied else None


def check(snapshot: Snapshot) -> list[Violation]:
    """Every violation of the soak's rules in ``snapshot`` (empty when all hold)."""
    revisions: dict[str, list[RevisionState]] = defaultdict(list)
    for revision in snapshot.revisions:
        revisions[revision.instance_id].append(revision)
    usage: dict[str, list[UsageState]] = defaultdict(list)
    for event in snapshot.usage:
        usage[event.instance_id].append(event)
    objects: dict[str, list[ClusterObject]] = defaultdict(list)
    for obj in snapshot.objects:
        if obj.instance_id is not None:
            objects[obj.instance_id].append(obj)
    by_id = {i.id: i for i in snapshot.instances}

    out: list[Violation] = []
    for instance in snapshot.instances:
        history = sorted(revisions[instance.id], key=lambda r: r.number)
        last = _last_applied(history)
        out += _converged(instance)
        out += _status(instance, last, objects[instance.id])
        out += _retained(instance, last, objects[instance.id], snapshot.namespaces)
        out += _claims(
            instance,
            last,
            snapshot.seen_claims.get(instance.id, {}),
            objects[instance.id],
            restored=instance.id in snapshot.restored,
        )
        out += _usage(instance, history, usage[instance.id])
        if instance.deleted and instance.namespace in snapshot.namespaces:
            # A live instance may reuse the name (and so the namespace) of a deleted one.
            reused = any(
                i.namespace == instance.namespace and not i.deleted for i in snapshot.instances
            )
            if not reused:
                out.append(
                    Violation(
                        "orphan",
                        instance.label,
                        f"deleted, but namespace {instance.namespace} still exists",
                    )
                )
    for owner_id, owned in objects.items():
        out += _orphans(by_id.get(owner_id), owner_id, owned, revisions[owner_id])
    unknown = {e.instance_id for e in snapshot.usage} - set(by_id)
    out += [Violation("usage", i, "usage events of an unknown instance") for i in sorted(unknown)]
    return out


def _converged(instance: InstanceState) -> list[Violation]:
    out = []
    if instance.observed_generation != instance.generation:
        out.append(
            Violation(
                "converged",
                instance.label,
                f"observed generation {instance.observed_generation} != generation "
                f"{instance.generation} (phase {instance.phase})",
            )
        )
    expected = DELETED if instance.deletion_requested else RETAINED if instance.retained else READY
    if instance.phase != expected:
        out.append(
            Violation("converged", instance.label, f"phase {instance.phase}, expected {expected}")
        )
    if instance.retained and instance.phase == RETAINED and not instance.applied:
        out.append(Violation("converged", instance.label, "Retained, but the retain did not apply"))
    if instance.deletion_requested and instance.phase == DELETED and not instance.deleted:
        out.append(Violation("converged", instance.label, "phase Deleted without deleted_at"))
    return out


def _status(
    instance: InstanceState, last: RevisionState | None, owned: list[ClusterObject]
) -> list[Violation]:
    if instance.deleted or instance.phase != READY:
        return []
    if last is None:
        return [Violation("status", instance.label, "Ready without an applied revision")]
    out = []
    desired = (instance.version, instance.plan, dict(instance.parameters))
    recorded = (last.version, last.plan, dict(last.parameters))
    if desired != recorded:
        out.append(
            Violation(
                "status",
                instance.label,
                f"Ready, but revision {last.number} applied {recorded}, desired is {desired}",
            )
        )
    live = {o.object_id: o for o in owned if o.namespace in (instance.namespace, None)}
    for object_id, digest in sorted(last.inventory.items()):
        obj = live.get(object_id)
        if obj is None:
            out.append(
                Violation("status", instance.label, f"Ready, but {object_id} is not in the cluster")
            )
        elif obj.digest is not None and obj.digest != digest:
            out.append(
                Violation(
                    "status",
                    instance.label,
                    f"{object_id} has digest {obj.digest}, revision {last.number} applied {digest}",
                )
            )
    return out


def _orphans(
    owner: InstanceState | None,
    owner_id: str,
    owned: list[ClusterObject],
    history: list[RevisionState],
) -> list[Violation]:
    if owner is None:
        return [
            Violation("orphan", o.object_id, f"labelled with unknown instance {owner_id}")
            for o in owned
        ]
    if owner.deleted:
        return [
            Violation("orphan", owner.label, f"deleted, but {o.object_id} is still in the cluster")
            for o in owned
        ]
    last = _last_applied(history)
    inventory = set(last.inventory) if last is not None else set()
    out = []
    for obj in owned:
        if obj.namespace not in (owner.namespace, None):
            out.append(
                Violation(
                    "orphan",
                    owner.label,
                    f"{obj.object_id} in namespace {obj.namespace}, not {owner.namespace}",
                )
            )
        elif owner.retained and kind_of(obj.object_id) in DATA_KINDS:
            continue  # kept data; its workloads are judged by the ``retained`` rule
        elif obj.object_id not in inventory:
            number = last.number if last else 0
            out.append(
                Violation(
                    "orphan",
                    owner.label,
                    f"{obj.object_id} is not in the inventory of revision {number}",
                )
            )
    return out


def _retained(
    instance: InstanceState,
    last: RevisionState | None,
    owned: list[ClusterObject],
    namespaces: set[str],
) -> list[Violation]:
    if instance.phase == RETAINED and instance.purge_after is None:
        return [Violation("retained", instance.label, "phase Retained without purge_after")]
    if not instance.retained or instance.deleted:
        return []
    out = []
    if instance.namespace not in namespaces:
        out.append(
            Violation(
                "retained", instance.label, f"retained, but namespace {instance.namespace} is gone"
            )
        )
    live = {o.object_id for o in owned if o.namespace in (instance.namespace, None)}
    declared = sorted(o for o in (last.inventory if last else {}) if kind_of(o) == CLAIM_KIND)
    out += [
        Violation("retained", instance.label, f"retained, but claim {claim} is not in the cluster")
        for claim in declared
        if claim not in live
    ]
    converged = instance.observed_generation == instance.generation and instance.applied
    if instance.phase == RETAINED and converged:
        out += [
            Violation(
                "retained",
                instance.label,
                f"retained, but {o.object_id} is still in the cluster (only data is kept)",
            )
            for o in owned
            if kind_of(o.object_id) not in DATA_KINDS
        ]
    return out


def _claims(
    instance: InstanceState,
    last: RevisionState | None,
    seen: Mapping[str, str],
    owned: list[ClusterObject],
    *,
    restored: bool,
) -> list[Violation]:
    """No claim is lost before purge: the first UID seen is the UID at the end."""
    if instance.deletion_requested or instance.deleted:
        return []  # purged: its claims go with it
    live = {o.object_id: o for o in owned if o.namespace == instance.namespace}
    how = "restored" if restored else "retained" if instance.retained else "live"
    out = []
    for claim, uid in sorted(seen.items()):
        if last is not None and claim not in last.inventory:
            continue  # a later revision of the stack no longer declares it (pruned)
        obj = live.get(claim)
        if obj is None:
            out.append(
                Violation(
                    "claims",
                    instance.label,
                    f"{how}, never purged, but claim {claim} (uid {uid}) is gone",
                )
            )
        elif obj.uid is not None and obj.uid != uid:
            out.append(
                Violation(
                    "claims",
                    instance.label,
                    f"{how}, never purged, but claim {claim} was replaced: uid {obj.uid}, "
                    f"first seen {uid}",
                )
            )
    return out


def expected_usage(
    instance: InstanceState, history: Sequence[RevisionState]
) -> list[tuple[str, str]]:
    """(kind, plan) in order, as the instance's applied revisions imply."""
    applied = [r for r in sorted(history, key=lambda r: r.number) if r.applied]
    if not applied:
        return []
    out = [("started", applied[0].plan)]
    for before, after in itertools.pairwise(applied):
        if after.plan != before.plan:
            out.append(("plan_changed", after.plan))
    if instance.deleted:
        # The plan of ``stopped`` is informational (billing ends the running plan's period).
        out.append(("stopped", ANY_PLAN))
    return out


def _usage(
    instance: InstanceState, history: Sequence[RevisionState], events: Sequence[UsageState]
) -> list[Violation]:
    ordered = sorted(events, key=lambda e: e.at)
    everything = [(e.kind, ANY_PLAN if e.kind == "stopped" else e.plan) for e in ordered]
    actual = without_retention(everything)
    expected = expected_usage(instance, history)
    out = []
    ran = any(r.applied for r in history)
    if (
        instance.retained
        and instance.phase == RETAINED
        and instance.observed_generation == instance.generation
        and instance.applied
        and ran
        and (not everything or everything[-1][0] != "retained")
    ):
        out.append(
            Violation(
                "usage", instance.label, f"retained, but the last usage event is not: {everything}"
            )
        )
    if actual != expected:
        out.append(
            Violation(
                "usage",
                instance.label,
                f"events {actual} do not match the history, which implies {expected}",
            )
        )
    return out


def without_retention(events: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``events`` without ``retained`` and the restore's ``plan_changed`` that follows it at
    the plan that ran before (a restore applying a pending plan change keeps its event)."""
    out: list[tuple[str, str]] = []
    plan, after_retained = None, False
    for kind, event_plan in events:
        if kind == "retained":
            after_retained = True
            continue
        if kind == "plan_changed" and after_retained and event_plan == plan:
            after_retained = False
            continue
        after_retained = False
        if kind in ("started", "plan_changed"):
            plan = event_plan
        out.append((kind, event_plan))
    return out
