"""The API resources the emulator serves, and how discovery describes them.

The table is the subset of Kubernetes kinds a typical City Platform stack uses, plus what
Helm touches. Nothing here knows about storage or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    #: Served with a ``/status`` subresource (writes to the main resource ignore ``status``).
    has_status: bool = False
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as the real server names resources in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", False, True, ("ns",)),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True, False, ("sa",)),
    Kind("", "v1", "ConfigMap", "configmaps", True, False, ("cm",)),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "Service", "services", True, True, ("svc",)),
    Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, True, ("pvc",)),
    Kind("", "v1", "ResourceQuota", "resourcequotas", True, True, ("quota",)),
    Kind("", "v1", "LimitRange", "limitranges", True, False, ("limits",)),
    Kind("", "v1", "Pod", "pods", True, True, ("po",)),
    Kind("", "v1", "Event", "events", True, False, ("ev",)),
    Kind("apps", "v1", "Deployment", "deployments", True, True, ("deploy",)),
    Kind("apps", "v1", "StatefulSet", "statefulsets", True, True, ("sts",)),
    # Listed (empty) by Helm's readiness watcher for Deployments and StatefulSets.
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, True, ("rs",)),
    Kind("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    Kind("batch", "v1", "Job", "jobs", True, True),
    Kind("batch", "v1", "CronJob", "cronjobs", True, True, ("cj",)),
    Kind("networking.k8s.io", "v1", "Ingress", "ingresses", True, True, ("ing",)),
    Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, False, ("netpol",)),
    Kind("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, True, ("pdb",)),
    Kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, True),
    Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True),
    # Read by the port before a PersistentVolumeClaim grows (allowVolumeExpansion).
    Kind("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, False, ("sc",)),
    Kind("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", True),
)


def find_kind(name: str) -> Kind:
    """A kind by its Kind name (``Deployment``), plural (``deployments``) or short name."""
    lowered = name.lower()
    for kind in KINDS:
        if lowered in (kind.kind.lower(), kind.plural, *kind.short_names):
            return kind
    raise KeyError(f"the emulator does not serve a kind named {name!r}")


def kinds_of(group: str, version: str) -> list[Kind]:
    return [k for k in KINDS if k.group == group and k.version == version]


def groups() -> dict[str, list[str]]:
    """Named API groups (not the core group) and their versions, in table order."""
    result: dict[str, list[str]] = {}
    for kind in KINDS:
        if kind.group:
            versions = result.setdefault(kind.group, [])
            if kind.version not in versions:
                versions.append(kind.version)
    return result


def resource_list(group: str, version: str) -> dict[str, Any]:
    """The ``APIResourceList`` of one group version, as ``/api/v1`` or ``/apis/g/v`` serve it."""
    resources: list[dict[str, Any]] = []
    for kind in kinds_of(group, version):
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": VERBS,
                "shortNames": list(kind.short_names),
                "storageVersionHash": "emulator",
            }
        )
        if kind.has_status:
            resources.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list() -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [api_group(name, versions) for name, versions in groups().items()],
    }


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root() -> dict[str, Any]:
    """``/openapi/v3``: one document per group version.

    client-go (and so Helm, which validates hook objects whatever the install options say)
    asks it whether the server validates fields itself; without it, it falls back to the
    protobuf ``/openapi/v2``, which the emulator does not serve.
    """
    paths = {_gv_path(k.group, k.version) for k in KINDS}
    return {
        "paths": {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=emulator"} for gv in sorted(paths)
        }
    }


def openapi_v3_document(gv_path: str) -> dict[str, Any] | None:
    """The document of one group version: a PATCH per kind that takes ``fieldValidation``
    (all client-go needs to leave validation to the server), no schemas."""
    members = [k for k in KINDS if _gv_path(k.group, k.version) == gv_path]
    if not members:
        return None
    paths: dict[str, Any] = {}
    for kind in members:
        scope = "namespaces/{namespace}/" if kind.namespaced else ""
        paths[f"/{gv_path}/{scope}{kind.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": {
                    "group": kind.group,
                    "version": kind.version,
                    "kind": kind.kind,
                },
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                ],
                "responses": {},
            }
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes"}, "paths": paths}
