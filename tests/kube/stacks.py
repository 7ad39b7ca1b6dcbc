"""A typical rendered stack, as the renderer would hand it to the port."""

from __future__ import annotations

from typing import Any

INSTANCE_LABEL = "city-platform.be/instance-id"


def stack(
    namespace: str, instance_id: str = "inst-1", *, replicas: int = 2, extra: bool = True
) -> list[dict[str, Any]]:
    """Objects of one instance, deliberately not in apply order."""
    labels = {INSTANCE_LABEL: instance_id, "app.kubernetes.io/managed-by": "city-platform"}

    def meta(name: str, *, namespaced: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": dict(labels)}
        if namespaced:
            out["namespace"] = namespace
        return out

    pod_labels = {"app.kubernetes.io/component": "web", "app.kubernetes.io/instance": namespace}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("web"),
            "spec": {"selector": pod_labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("web"),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {"labels": {**pod_labels, **labels}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("web-config"),
            "data": {"LOG_LEVEL": "info"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("web-credentials"),
            "type": "Opaque",
            "stringData": {"password": "s3cr3t-value"},
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta("quota"),
            "spec": {"hard": {"pods": "20"}},
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(namespace, namespaced=False)},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
    ]
    if extra:
        objects.append(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": meta("migrate"),
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "migrate", "image": "app:1"}],
                        }
                    }
                },
            }
        )
        objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta("web"),
                "spec": {"minAvailable": 1, "selector": {"matchLabels": pod_labels}},
            }
        )
    return objects


def ids(objects: list[dict[str, Any]]) -> set[str]:
    return {f"{o['apiVersion']}/{o['kind']}/{o['metadata']['name']}" for o in objects}
