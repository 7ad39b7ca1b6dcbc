"""Readiness of workloads, judged from their live status.

A Deployment or StatefulSet is ready when its controller has observed the current generation
and all desired replicas are updated and available; a Job when it has succeeded its completions;
a CloudNativePG ``Cluster`` (an instance's database on a ``cloudnative-pg`` target) when the
operator reports it Ready with every instance ready. Other kinds are ready once they exist.
Messages say what is missing in words a person can act on. Pure functions over live
objects: this module must not know about HTTP or the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "Job"})
#: The database of an instance on a ``cloudnative-pg`` target: the operator reports on it.
CNPG_CLUSTER = "postgresql.cnpg.io/v1/Cluster"


def judged(object_id: str) -> bool:
    """Whether readiness waits on this object (``apiVersion/kind/name``) beyond existing."""
    api_kind, _, _name = object_id.rpartition("/")
    return api_kind.rpartition("/")[2] in WORKLOAD_KINDS or api_kind == CNPG_CLUSTER


@dataclass(frozen=True, slots=True)
class ObjectReadiness:
    object_id: str
    ready: bool
    message: str
    #: True when waiting will not help (a failed Job, a rollout past its deadline).
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Readiness:
    objects: dict[str, ObjectReadiness] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(o.ready for o in self.objects.values())

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.objects.values())

    @property
    def messages(self) -> list[str]:
        """One line per object that is not ready."""
        return [f"{o.object_id}: {o.message}" for o in self.objects.values() if not o.ready]


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def _generation_lag(live: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    generation = int((live.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return (
            f"the controller has not yet seen the latest change "
            f"(generation {generation}, observed {observed})"
        )
    return None


def evaluate(object_id: str, kind: str, live: Mapping[str, Any] | None) -> ObjectReadiness:
    """Readiness of one object from its live state (``None``: it does not exist)."""
    if live is None:
        return ObjectReadiness(object_id, False, "does not exist on the cluster; apply it first")
    status: Mapping[str, Any] = live.get("status") or {}
    spec: Mapping[str, Any] = live.get("spec") or {}
    if kind == "Job":
        failed = _condition(status, "Failed")
        if failed and failed.get("status") == "True":
            why = failed.get("message") or failed.get("reason") or "the job failed"
            return ObjectReadiness(
                object_id, False, f"job failed: {why}; check its pod logs", failed=True
            )
        completions = int(spec.get("completions") or 1)
        succeeded = int(status.get("succeeded") or 0)
        if succeeded >= completions:
            return ObjectReadiness(object_id, True, "completed")
        return ObjectReadiness(
            object_id, False, f"job running: {succeeded} of {completions} completions succeeded"
        )
    if object_id.startswith(CNPG_CLUSTER + "/"):
        return _database(object_id, spec, status)
    if kind in ("Deployment", "StatefulSet"):
        if lag := _generation_lag(live, status):
            return ObjectReadiness(object_id, False, lag)
        progressing = _condition(status, "Progressing")
        if (
            progressing
            and progressing.get("status") == "False"
            and progressing.get("reason") == "ProgressDeadlineExceeded"
        ):
            why = progressing.get("message") or "rollout exceeded its progress deadline"
            return ObjectReadiness(
                object_id,
                False,
                f"rollout failed: {why}; check image, resources and probes",
                failed=True,
            )
        desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        updated = int(status.get("updatedReplicas") or 0)
        ready_field = "availableReplicas" if kind == "Deployment" else "readyReplicas"
        available = int(status.get(ready_field) or 0)
        if updated < desired:
            return ObjectReadiness(
                object_id, False, f"rollout in progress: {updated} of {desired} replicas updated"
            )
        if available < desired:
            word = "available" if kind == "Deployment" else "ready"
            return ObjectReadiness(object_id, False, f"{available} of {desired} replicas {word}")
        return ObjectReadiness(object_id, True, f"{available} of {desired} replicas ready")
    return ObjectReadiness(object_id, True, "exists")


def _database(
    object_id: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> ObjectReadiness:
    """A CloudNativePG Cluster: only what its operator reported counts (no status, no claim)."""
    if not status:
        return ObjectReadiness(
            object_id,
            False,
            "the CloudNativePG operator has not reported on this database yet; "
            "check that the operator runs on the target",
        )
    desired = int(spec.get("instances") or 1)
    ready_instances = int(status.get("readyInstances") or 0)
    condition = _condition(status, "Ready")
    phase = status.get("phase") or "no phase reported"
    if condition is not None and condition.get("status") == "True" and ready_instances >= desired:
        return ObjectReadiness(object_id, True, f"database ready: {ready_instances} of {desired}")
    return ObjectReadiness(
        object_id,
        False,
        f"database not ready ({phase}): {ready_instances} of {desired} instances ready",
    )
