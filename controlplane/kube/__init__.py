"""The Kubernetes port: server-side apply, prune, readiness, observation and namespace deletion.

Built on the official ``kubernetes`` client. The port is a bottom layer: it must not know about
tenants, instances, revisions, rendering or the database (see docs/kubernetes.md).
"""

from __future__ import annotations

from controlplane.kube.client import ApplyResult, KubeClient
from controlplane.kube.errors import (
    ApplyConflict,
    ObjectRejected,
    TargetForbidden,
    TargetUnavailable,
    UnknownKind,
)
from controlplane.kube.objects import (
    APPLY_ORDER,
    INSTANCE_LABEL,
    ObjectRef,
    apply_rank,
    apply_wave,
    object_id,
)
from controlplane.kube.readiness import ObjectReadiness, Readiness
from controlplane.kube.retrying import RetryPolicy

__all__ = [
    "APPLY_ORDER",
    "INSTANCE_LABEL",
    "ApplyConflict",
    "ApplyResult",
    "KubeClient",
    "ObjectReadiness",
    "ObjectRef",
    "ObjectRejected",
    "Readiness",
    "RetryPolicy",
    "TargetForbidden",
    "TargetUnavailable",
    "UnknownKind",
    "apply_rank",
    "apply_wave",
    "object_id",
]
