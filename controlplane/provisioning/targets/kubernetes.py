"""The Kubernetes target: the reconciler's view of ``controlplane.kube.KubeClient``.

The port does server-side apply, prune, readiness and namespace deletion; this adapter adds
what the reconciler needs on top: each applied object carries the digest it was rendered
from (annotation ``city-platform.be/object-digest``), so the periodic resync finds drift —
an object that is gone, that another tool replaced, or whose fields someone edited — with
reads only, and a no-op reconcile writes nothing.

A ResourceQuota that would shrink (a plan change down) is not tightened at once: the old,
larger pods still run while the new ones start, and a quota sized for the new plan alone
makes the apiserver refuse the new pods, so the rollout never finishes. Such a quota is
applied at the larger of the live and the desired amounts, marked ``quota-until-ready``,
and tightened to the desired amounts by :meth:`KubernetesTarget.readiness` once every
workload is ready; until then the drift check accepts it.

This module must not know about the database or the queue.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from controlplane.errors import ControlPlaneError, ErrorItem, InvalidInput
from controlplane.provisioning.targets import (
    ApplyReport,
    Deletion,
    KubeObject,
    Readiness,
    Stack,
    TargetError,
    TargetRejected,
    VolumeExpansionRefused,
)

if TYPE_CHECKING:
    from controlplane.kube.client import KubeClient

DIGEST_ANNOTATION = "city-platform.be/object-digest"
#: On a ResourceQuota kept at the larger of two plans until the rollout is done.
QUOTA_UNTIL_READY = "city-platform.be/quota-until-ready"
#: Top-level keys that are not desired state (or, for Secrets, not comparable as written).
_NOT_COMPARED = frozenset({"apiVersion", "kind", "metadata", "status"})
_SECRET_NOT_COMPARED = frozenset({"data", "stringData"})


#: The label on a Namespace (and everything in it) naming the instance that owns it.
OWNER_LABEL = "city-platform.be/instance-id"


class NamespaceOwned(TargetRejected):
    """The namespace belongs to another instance; nothing was written into it."""

    status = 409
    title = "Namespace owned by another instance"
    code = "namespace_owned"
    reason = "NamespaceOwnedByAnotherInstance"


def _owned_by_other(namespace: Mapping[str, Any], *, tenant: str, instance: str) -> bool:
    """Whether the namespace's platform labels name another tenant or instance.

    Slugs and instance names are valid label values as they are (DNS labels).
    """
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    owner_tenant = labels.get("city-platform.be/tenant")
    owner_instance = labels.get("app.kubernetes.io/instance")
    return (owner_tenant is not None and owner_tenant != tenant) or (
        owner_instance is not None and owner_instance != instance
    )


class KubernetesTarget:
    """A cluster, reached through the Kubernetes port."""

    drift_needs_objects = True

    def __init__(self, port: KubeClient, *, name: str = "kubernetes", delete_timeout: float = 300):
        self.name = name
        self.port = port
        #: Seconds a namespace may terminate before the Deleting message says where to look.
        self.delete_timeout = delete_timeout

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> KubernetesTarget:
        """``{"kubeconfig": path, "context": name}`` or ``{"in_cluster": true}``."""
        from controlplane.kube.client import KubeClient

        try:
            if config.get("in_cluster"):
                port = KubeClient.in_cluster()
            else:
                kubeconfig = config.get("kubeconfig")
                port = KubeClient.from_kubeconfig(
                    str(Path(kubeconfig).expanduser()) if kubeconfig else None,
                    config.get("context"),
                )
        except ControlPlaneError:
            raise
        except Exception as exc:  # the client raises plain exceptions for bad kubeconfigs
            raise InvalidInput(
                f"Target {name!r}: cannot load the Kubernetes client configuration: {exc}",
                errors=[ErrorItem(f"targets.{name}.config", str(exc))],
                hint="Set `kubeconfig` and `context` to an existing kubeconfig file and context, "
                "or `in_cluster: true` when the control plane runs inside the cluster.",
            ) from exc
        return cls(port, name=name, delete_timeout=float(config.get("delete_timeout", 300)))

    # -- StackTarget
    def apply(self, stack: Stack, *, only: set[str] | None = None) -> ApplyReport:
        objects = [_annotated(obj, stack.digests) for obj in stack.objects]
        if only is not None and not only:
            return ApplyReport()
        quotas = [
            i
            for i, obj in enumerate(objects)
            if obj.get("kind") == "ResourceQuota" and (only is None or _id(obj) in only)
        ]
        with _Translated(self.name):
            # The namespace and the quotas, read together: on a provision none is cached.
            namespace, *live_quotas = self.port.read_all(
                [(None, f"v1/Namespace/{stack.namespace}")]
                + [(objects[i]["metadata"].get("namespace"), _id(objects[i])) for i in quotas]
            )
            self._check_owner(stack, namespace)
            for i, live in zip(quotas, live_quotas, strict=True):
                objects[i] = _quota_for_rollout(objects[i], live)
            self.port.apply(objects, only=only)
        written = [oid for oid in stack.digests if only is None or oid in only]
        return ApplyReport(written=written)

    def prune(self, stack: Stack, *, previous: Sequence[str]) -> list[str]:
        with _Translated(self.name):
            return list(
                self.port.prune(
                    stack.namespace,
                    keep=set(stack.digests),
                    inventory=list(previous),
                    instance_id=stack.instance_id,
                )
            )

    def drifted(self, stack: Stack) -> set[str]:
        with _Translated(self.name):
            live = self.port.observe(stack.namespace, list(stack.digests))
        desired = {_id(obj): obj for obj in stack.objects}
        drift = set()
        for oid, digest in stack.digests.items():
            obj = live.get(oid)
            if obj is None:
                drift.add(oid)
                continue
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if annotations.get(DIGEST_ANNOTATION) != digest or (
                oid in desired and not _contains(obj, desired[oid])
            ):
                drift.add(oid)
        return drift

    def readiness(self, stack: Stack) -> Readiness:
        with _Translated(self.name):
            result = self.port.readiness(list(stack.objects))
            if result.ready:
                self._tighten_quotas(stack)
        return Readiness(
            ready=bool(result.ready), messages=tuple(result.messages), failed=bool(result.failed)
        )

    def delete(self, *, tenant: str, instance: str, namespace: str) -> Deletion:
        """Request the namespace's deletion (once) and report what is left; never waits.

        The namespace controller removes the objects (pods get their grace period, finalizers
        run); the reconciler calls again later. Past ``delete_timeout`` seconds of
        terminating, the message says where to look.
        """
        with _Translated(self.name):
            live = self.port.get(None, f"v1/Namespace/{namespace}")
            if live is not None and _owned_by_other(live, tenant=tenant, instance=instance):
                # Never this instance's: deleting it would delete another's stack and data.
                return Deletion(
                    gone=True,
                    message=f"Namespace {namespace} belongs to another instance; left alone.",
                )
            seen = self.port.request_namespace_deletion(namespace)
        if seen.gone:
            return Deletion(gone=True, message=f"Namespace {namespace} is gone.")
        message = f"Namespace {namespace} deletion requested; it is {seen.phase}."
        if seen.remaining:
            message += " " + " ".join(_sentence(m) for m in seen.remaining[:3])
        waited = _seconds_since(seen.since)
        if waited is not None and waited >= self.delete_timeout:
            message += (
                f" It has been terminating for {waited:.0f} s: look for finalizers or stuck "
                f"objects with `kubectl get namespace {namespace} -o yaml`."
            )
        return Deletion(gone=False, message=message)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded ``data`` of one live Secret, or None when it does not exist (yet).

        For handing credentials over: callers must not log or store the values."""
        import base64

        with _Translated(self.name):
            live = self.port.get(namespace, f"v1/Secret/{name}")
        if live is None:
            return None
        data = live.get("data") or {}
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}

    def flush(self, message: str) -> None:
        return None

    # -- who owns the namespace
    def _check_owner(self, stack: Stack, live: Mapping[str, Any] | None) -> None:
        """Refuse to write into a namespace another instance owns (its owner label);
        ``live``: the namespace as read now."""
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        owner = labels.get(OWNER_LABEL)
        if owner is not None and owner != stack.instance_id:
            raise NamespaceOwned(
                f"Kubernetes target {self.name!r}: the namespace {stack.namespace} belongs to "
                f"another instance ({OWNER_LABEL} is not this instance's id); nothing was "
                "written.",
                errors=[ErrorItem("namespace", f"{stack.namespace} is owned by another instance")],
                hint="Delete this instance and create it under another name; an operator "
                f"can inspect `kubectl get namespace {stack.namespace} --show-labels`.",
            )

    # -- quotas across a rollout
    def _tighten_quotas(self, stack: Stack) -> None:
        """Apply the desired amounts to quotas kept wide for a rollout that is now done."""
        for obj in stack.objects:
            if obj.get("kind") != "ResourceQuota":
                continue
            live = self.port.read(stack.namespace, _id(obj))
            annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
            if QUOTA_UNTIL_READY in annotations:
                self.port.apply([_annotated(obj, stack.digests)])


def _quota_for_rollout(quota: KubeObject, live: Mapping[str, Any] | None) -> KubeObject:
    """The quota to apply now: never below what the running pods use (see the module);
    ``live``: the quota as read now."""
    if live is None:
        return quota
    hard = _hard(quota)
    wider = _quota_max(_hard(live), hard)
    if wider == hard:
        return quota
    out = copy.deepcopy(quota)
    out["spec"]["hard"] = wider
    out["metadata"].setdefault("annotations", {})[QUOTA_UNTIL_READY] = "true"
    return out


def _id(obj: Mapping[str, Any]) -> str:
    return f"{obj['apiVersion']}/{obj['kind']}/{obj['metadata']['name']}"


def _annotated(obj: KubeObject, digests: Mapping[str, str]) -> KubeObject:
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[DIGEST_ANNOTATION] = digests[_id(obj)]
    return out


def _contains(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether every desired field (spec, data, …, and the labels and annotations of its
    metadata) has its value in ``live``.

    A claim's storage request is a minimum: a volume larger than rendered (grown by an
    operator) is not drift — volumes never shrink, so re-applying could not undo it.
    """
    if desired.get("kind") == "PersistentVolumeClaim":
        desired = _at_least(desired, live)
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if desired.get("kind") == "ResourceQuota" and QUOTA_UNTIL_READY in annotations:
        # Kept wide until the rollout is done (tightened by ``readiness``): at least the
        # desired amounts is no drift.
        desired = {
            **desired,
            "spec": {**desired["spec"], "hard": _quota_max(_hard(live), _hard(desired))},
        }
    # The labels and annotations the platform sets are its own: another tool changing one
    # (``kubectl annotate --overwrite``) is drift; ones others add are not.
    want_meta, have_meta = desired.get("metadata") or {}, live.get("metadata") or {}
    if not all(
        _subset(want_meta.get(key) or {}, have_meta.get(key) or {})
        for key in ("labels", "annotations")
    ):
        return False
    skip = _NOT_COMPARED | (_SECRET_NOT_COMPARED if desired.get("kind") == "Secret" else set())
    return all(
        key in live and _subset(value, live[key])
        for key, value in desired.items()
        if key not in skip
    )


def _at_least(desired: Mapping[str, Any], live: Mapping[str, Any]) -> Mapping[str, Any]:
    """The desired claim with the live storage request when that is larger."""
    from controlplane.kube.volumes import storage_request

    want, have = storage_request(desired), storage_request(live)
    if want is None or have is None or not _larger(have, want):
        return desired
    out = copy.deepcopy(dict(desired))
    out["spec"]["resources"]["requests"]["storage"] = have
    return out


def _hard(quota: Mapping[str, Any]) -> dict[str, Any]:
    return dict(((quota.get("spec") or {}).get("hard")) or {})


def _quota_max(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Per resource, the desired amount, or the live one where that is larger.

    Only the desired resources: a resource the new stack drops is no longer limited.
    """
    return {
        key: live[key] if key in live and _larger(str(live[key]), str(value)) else value
        for key, value in desired.items()
    }


def _larger(a: str, b: str) -> bool:
    from kubernetes.utils import parse_quantity

    try:
        return bool(parse_quantity(a) > parse_quantity(b))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return False


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and _subset(v, have[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(_subset(w, h) for w, h in zip(want, have, strict=True))
        )
    if want == have:
        return True
    return _same_quantity(want, have)


def _same_quantity(want: Any, have: Any) -> bool:
    # The API server canonicalises quantities ("1000m" → "1"): equal amounts are no drift.
    if not isinstance(want, str | int) or not isinstance(have, str | int):
        return False
    from kubernetes.utils import parse_quantity

    try:
        return bool(parse_quantity(want) == parse_quantity(have))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return False


class _Translated:
    """Map the port's errors onto the target errors the reconciler handles."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, TargetError):
            return False
        from controlplane.kube.errors import ApplyConflict, TargetUnavailable
        from controlplane.kube.volumes import VolumeExpansionRefused as NotExpandable

        if isinstance(exc, NotExpandable):
            raise VolumeExpansionRefused(
                f"Kubernetes target {self.target!r}: {exc.detail}",
                errors=list(exc.errors),
                hint=exc.hint,
            ) from exc
        if isinstance(exc, TargetUnavailable | ApplyConflict):
            raise TargetError(
                f"Kubernetes target {self.target!r}: {exc.detail}",
                errors=list(exc.errors),
                hint=exc.hint or "The reconcile is retried with backoff.",
            ) from exc
        if isinstance(exc, InvalidInput):
            raise TargetRejected(
                f"Kubernetes target {self.target!r} rejected the stack: {exc.detail}",
                errors=list(exc.errors),
                hint=exc.hint,
            ) from exc
        return False


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else f"{text}."


def _seconds_since(timestamp: str | None) -> float | None:
    """Seconds since an API server timestamp (for messages only: clocks may differ a bit)."""
    if not timestamp:
        return None
    try:
        started = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return (datetime.now(UTC) - started).total_seconds()
