"""Where rendered stacks go: the port the reconciler writes through.

A :class:`StackTarget` makes one instance's objects exist in one place — a Kubernetes
cluster or a GitOps directory — and answers what is there now. The reconciler decides
*what* to write (only the objects whose digest changed or that drifted); a target decides
*how*, and must write nothing when asked to write nothing.

This package must not know about the database, the queue or templates: it receives
finished objects in apply order and the identity of the instance they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from controlplane.errors import Unavailable

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class Stack:
    """The objects of one instance as the reconciler wants them, in apply order."""

    tenant: str
    instance: str
    instance_id: str
    namespace: str
    #: A tuple, or ``PackedObjects`` from a render process (``controlplane.rendering.packed``):
    #: read the ids with ``object_ids`` to leave packed objects packed.
    objects: Sequence[KubeObject]
    #: Object id (``apiVersion/kind/name``) → digest of the rendered object.
    digests: Mapping[str, str]
    #: ``RenderedStack.digest`` (empty when the stack was not rendered, e.g. a GitOps resync).
    digest: str = ""
    #: Object id → the object as YAML (``object_yaml``), when the render process made it
    #: beside the render; a target that writes files takes it instead of serialising again.
    #: Never holds a Secret (a target seals or applies those itself).
    yaml: Mapping[str, bytes] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return list(self.digests)


@dataclass(frozen=True)
class Readiness:
    """Whether the stack runs, and if not, what a person should look at."""

    ready: bool
    messages: tuple[str, ...] = ()
    #: True when the target cannot know (GitOps: a controller elsewhere applies it).
    external: bool = False
    #: True when waiting will not help (a rollout past its deadline, a failed Job).
    failed: bool = False


@dataclass
class ApplyReport:
    """What one apply did: the ids written (empty when nothing had to change)."""

    written: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Deletion:
    """Where the removal of an instance stands after one ``delete`` call."""

    #: True when nothing of the instance is left; False while the target still removes it.
    gone: bool
    #: What the target saw (for the instance's status), e.g. the objects still left.
    message: str = ""


class TargetError(Unavailable):
    """The target could not be written or read right now; the reconcile is retried."""

    title = "Target unavailable"
    code = "target_unavailable"


class TargetRejected(TargetError):
    """The target refused an object (admission, validation); retrying the same input fails again."""

    status = 422
    title = "Object rejected by the target"
    code = "target_rejected"
    #: The reason of the instance's ``Applied`` condition.
    reason: ClassVar[str] = "Rejected"


class VolumeExpansionRefused(TargetRejected):
    """A volume would have to grow and the target cannot expand it; nothing was applied."""

    title = "Volume cannot grow"
    code = "volume_expansion_refused"
    reason = "VolumeExpansionRefused"


class StackTarget(Protocol):
    """One place stacks go. Every method is idempotent; only ``apply``, ``prune`` and
    ``delete`` may write, and they write nothing that is already as asked."""

    name: str
    #: Whether ``drifted`` compares the objects themselves (else the digests suffice, and a
    #: no-op reconcile need not render at all).
    drift_needs_objects: bool

    def apply(self, stack: Stack, *, only: set[str] | None = None) -> ApplyReport:
        """Write the objects of ``stack`` (all, or the ids in ``only``) in apply order."""
        ...

    def prune(self, stack: Stack, *, previous: Sequence[str]) -> list[str]:
        """Remove what ``previous`` (the last applied inventory) has and ``stack`` lacks."""
        ...

    def drifted(self, stack: Stack) -> set[str]:
        """Ids of the objects that are missing or differ from ``stack`` (reads only)."""
        ...

    def readiness(self, stack: Stack) -> Readiness:
        """Whether the workloads of the stack are up."""
        ...

    def delete(self, *, tenant: str, instance: str, namespace: str) -> Deletion | None:
        """Start removing everything of the instance, without waiting, and say where it stands.

        None (or ``gone``) when nothing is left, as when the removal is synchronous (GitOps
        folders); ``gone`` False while the target still removes it (a namespace that is
        terminating): the reconciler calls ``delete`` again later to look.
        """
        ...

    def flush(self, message: str) -> None:
        """End of a batch of reconciles (GitOps: commit if configured)."""
        ...
