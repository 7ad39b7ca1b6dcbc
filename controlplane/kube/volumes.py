"""Volume growth: may the claims of an apply change size on this cluster?

The API server lets a PersistentVolumeClaim's storage request **grow** only when the claim
is bound and its StorageClass has ``allowVolumeExpansion: true`` (otherwise the
``PersistentVolumeClaimResize`` admission plugin answers 403), and never lets it **shrink**
(422). Applied object by object, a stack would stop half-way at such a claim: the
ConfigMaps and the quota written, the claim and the workloads not. So the port judges
every claim of an apply *before its first write* (:meth:`KubeClient.apply`):

- a claim that does not exist yet, or keeps its size: nothing to decide;
- a claim asked to be smaller than it is: the apply keeps the live size (volumes never
  shrink — an operator may have grown it by hand; the platform never undoes that);
- a claim asked to grow: its StorageClass (``spec.storageClassName`` of the live claim, else
  the cluster's default class) must allow expansion, else the whole apply is refused with
  :class:`VolumeExpansionRefused` and nothing is written; a claim that is not bound yet
  cannot grow until it is (:class:`VolumeNotBound`, retried).

This module decides from plain objects (the desired claim, the live claim, the cluster's
StorageClasses); the reads are the port's. It must not know about tenants or the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from controlplane.errors import ErrorItem
from controlplane.kube.errors import ObjectRejected, TargetUnavailable
from controlplane.kube.objects import object_id

#: Annotations that mark the cluster's default StorageClass (the beta one is still honoured).
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


class VolumeExpansionRefused(ObjectRejected):
    """A volume would have to grow, and its StorageClass does not allow expansion."""

    title = "Volume cannot grow"
    code = "volume_expansion_refused"


class VolumeNotBound(TargetUnavailable):
    """A volume would have to grow, and its claim is not bound yet; retried."""

    title = "Volume not bound yet"
    code = "volume_not_bound"


class Verdict(StrEnum):
    #: The request grows and the StorageClass allows it.
    GROWS = "grows"
    #: The stack asks less than the claim has: the live size is kept.
    KEEPS = "keeps"
    #: The request would grow and the StorageClass does not allow expansion.
    NOT_EXPANDABLE = "not-expandable"
    #: The request would grow and the claim is not bound yet.
    NOT_BOUND = "not-bound"


@dataclass(frozen=True, slots=True)
class VolumeChange:
    """What applying one claim would do to its size."""

    object_id: str
    name: str
    namespace: str
    live: str
    desired: str
    verdict: Verdict
    #: The StorageClass the verdict was made with (None: the claim has none, no default).
    storage_class: str | None = None
    #: Why it cannot grow (NOT_EXPANDABLE only), for people.
    why: str = ""


def storage_request(claim: Mapping[str, Any] | None) -> str | None:
    """``spec.resources.requests.storage`` of a claim, as written."""
    spec = (claim or {}).get("spec") or {}
    value = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    return None if value is None else str(value)


def _amount(value: str) -> Decimal | None:
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return None


def default_class(classes: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The cluster's default StorageClass; with several, the newest (the API server's rule)."""
    marked = [
        c
        for c in classes
        if any(
            ((c.get("metadata") or {}).get("annotations") or {}).get(key) == "true"
            for key in DEFAULT_CLASS_ANNOTATIONS
        )
    ]
    if not marked:
        return None
    return max(
        marked,
        key=lambda c: (
            str((c.get("metadata") or {}).get("creationTimestamp") or ""),
            str((c.get("metadata") or {}).get("name") or ""),
        ),
    )


def class_of(
    live: Mapping[str, Any], classes: Sequence[Mapping[str, Any]]
) -> tuple[str | None, Mapping[str, Any] | None]:
    """The name and object of the StorageClass a live claim belongs to.

    ``spec.storageClassName`` names it; an empty name means "no class" (a statically
    bound volume, which cannot be expanded); no name at all means the default class.
    """
    spec = live.get("spec") or {}
    if "storageClassName" in spec and spec["storageClassName"] is not None:
        name = str(spec["storageClassName"])
        if not name:
            return None, None
        found = next((c for c in classes if (c.get("metadata") or {}).get("name") == name), None)
        return name, found
    chosen = default_class(classes)
    if chosen is None:
        return None, None
    return str((chosen.get("metadata") or {}).get("name")), chosen


def judge(
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    classes: Sequence[Mapping[str, Any]],
) -> VolumeChange | None:
    """What applying ``desired`` over ``live`` would do; None when its size does not change."""
    if live is None:
        return None
    want, have = storage_request(desired), storage_request(live)
    if want is None or have is None:
        return None
    want_amount, have_amount = _amount(want), _amount(have)
    if want_amount is None or have_amount is None or want_amount == have_amount:
        return None  # unreadable sizes are the server's to refuse, with its own message
    meta = desired.get("metadata") or {}
    change = {
        "object_id": object_id(desired),
        "name": str(meta.get("name") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "live": have,
        "desired": want,
    }
    if want_amount < have_amount:
        return VolumeChange(**change, verdict=Verdict.KEEPS)
    name, storage_class = class_of(live, classes)
    why = ""
    if name is None:
        why = "it has no StorageClass (none named, no default class), so it cannot be expanded"
    elif storage_class is None:
        why = f"its StorageClass {name!r} does not exist on the cluster"
    elif storage_class.get("allowVolumeExpansion") is not True:
        why = (
            f"its StorageClass {name!r} does not allow volume expansion "
            "(allowVolumeExpansion is not true)"
        )
    if why:
        return VolumeChange(**change, verdict=Verdict.NOT_EXPANDABLE, storage_class=name, why=why)
    if ((live.get("status") or {}).get("phase")) != "Bound":
        return VolumeChange(**change, verdict=Verdict.NOT_BOUND, storage_class=name)
    return VolumeChange(**change, verdict=Verdict.GROWS, storage_class=name)


def needs_classes(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether judging this claim needs the StorageClasses (only when it would grow)."""
    want, have = storage_request(desired), storage_request(live)
    if live is None or want is None or have is None:
        return False
    want_amount, have_amount = _amount(want), _amount(have)
    return want_amount is not None and have_amount is not None and want_amount > have_amount


def check(changes: Sequence[VolumeChange]) -> None:
    """Raise when any claim cannot change as asked: refusals first (final), then waits."""
    refused = [c for c in changes if c.verdict == Verdict.NOT_EXPANDABLE]
    if refused:
        names = ", ".join(c.name for c in refused)
        classes = sorted({c.storage_class for c in refused if c.storage_class})
        raise VolumeExpansionRefused(
            detail=f"Volume {names} would have to grow, and the cluster cannot expand it; "
            "nothing was applied.",
            errors=[
                ErrorItem(
                    c.object_id,
                    f"PersistentVolumeClaim {c.name} has {c.live} and the stack asks "
                    f"{c.desired}, but {c.why}",
                )
                for c in refused
            ],
            hint=(
                f"A cluster operator can allow expansion on StorageClass "
                f"{', '.join(classes)} (allowVolumeExpansion: true), after which the change "
                "is applied on the next retry; or keep the current plan."
                if classes
                else "Keep the current plan, or have a cluster operator move the volume to a "
                "StorageClass that allows expansion."
            ),
            extra={"objects": [c.object_id for c in refused]},
        )
    unbound = [c for c in changes if c.verdict == Verdict.NOT_BOUND]
    if unbound:
        names = ", ".join(c.name for c in unbound)
        raise VolumeNotBound(
            detail=f"Volume {names} would have to grow and is not bound yet "
            f"({', '.join(f'{c.live} → {c.desired}' for c in unbound)}); "
            "a claim can only grow once bound. Nothing was applied.",
            hint="it binds when its pod is scheduled; the reconciler will try again",
        )
