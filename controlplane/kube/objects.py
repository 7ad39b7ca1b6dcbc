"""Object identity and apply order for Kubernetes manifests.

An object id is ``"{apiVersion}/{kind}/{metadata.name}"`` (the same rule as
``controlplane.rendering.object_id``, restated here because the port is a lower layer). The apply
order puts what others depend on first: the namespace, then its guard rails, then configuration,
then workloads, then what exposes them. It orders a stack's objects and numbers its GitOps
files. The port writes in *waves* (``apply_wave``): ranks that do not depend on each other go
out together. This module must not know about HTTP or the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NewType

ObjectId = NewType("ObjectId", str)

#: The instance label the renderer puts on every object; prune finds strays by it.
INSTANCE_LABEL = "city-platform.be/instance-id"

APPLY_ORDER: tuple[tuple[str, ...], ...] = (
    ("Namespace",),
    ("ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding",
     "ClusterRole", "ClusterRoleBinding"),
    ("ConfigMap", "Secret", "PersistentVolumeClaim"),
    ("Deployment", "StatefulSet", "Job", "CronJob"),
    ("Service", "Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler"),
)  # fmt: skip
_RANK = {kind: rank for rank, kinds in enumerate(APPLY_ORDER) for kind in kinds}

#: The wave of each rank of ``APPLY_ORDER``, then of unknown kinds (custom resources, last).
#: What exposes workloads (Services, Ingresses, PDBs, HPAs) finds them by label or by name
#: and waits for them, so it is written with the configuration, before the workloads: one
#: round trip less per provision, and pods start with their stack's Service environment
#: variables. Kubernetes advises creating a Service before its backend workloads, and
#: Helm's install order does so too.
_WAVE = (0, 1, 2, 3, 2, 4)

#: Namespaced kinds that prune searches by label, in apply order (deletion runs in reverse).
PRUNABLE_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)


def object_id(obj: Mapping[str, Any]) -> ObjectId:
    meta = obj.get("metadata") or {}
    return ObjectId(f"{obj.get('apiVersion')}/{obj.get('kind')}/{meta.get('name')}")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An object id taken apart."""

    api_version: str
    kind: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ObjectRef:
        head, _, name = value.rpartition("/")
        api_version, _, kind = head.rpartition("/")
        if not (api_version and kind and name):
            raise ValueError(f"not an object id (apiVersion/kind/name): {value!r}")
        return cls(api_version, kind, name)

    @property
    def id(self) -> ObjectId:
        return ObjectId(f"{self.api_version}/{self.kind}/{self.name}")

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def identity(self) -> tuple[str, str, str]:
        """(group, kind, name): the same object whatever API version names it."""
        return (self.group, self.kind, self.name)


def apply_rank(kind: str) -> int:
    """Position of a kind in the apply order; unknown kinds (CRDs) go last."""
    return _RANK.get(kind, len(APPLY_ORDER))


def apply_wave(kind: str) -> int:
    """The wave the port writes a kind in: objects of one wave are written at once."""
    return _WAVE[apply_rank(kind)]


def _write_key(obj: Mapping[str, Any]) -> tuple[int, int]:
    rank = apply_rank(str(obj.get("kind")))
    return _WAVE[rank], rank


def in_write_order(objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Wave by wave, in apply order within a wave; a stable sort, so within one rank the
    caller's order is kept."""
    return sorted(objects, key=_write_key)
