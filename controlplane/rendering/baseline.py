"""The namespace baseline that the platform puts in front of every stack.

- ``Namespace`` with Pod Security Admission ``enforce/audit/warn: restricted``;
- ``ResourceQuota`` derived from the rendered workloads, so that the cluster enforces
  exactly what the plan pays for (see :func:`quota`);
- ``LimitRange`` with the plan's requests and limits as container defaults;
- ``NetworkPolicy`` default-deny (ingress and egress), plus DNS to kube-system,
  all traffic inside the namespace, the ingress controller to each exposed component,
  and egress to the internet (not to cluster-internal ranges) for declared components;
  for a CloudNativePG ``Cluster``, its operator's and instance manager's traffic
  (:func:`cloudnative_pg_policies`).

This module must not know about templates or parameters: it reads the plan, the
release's network allows and the objects the stack rendered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from controlplane.catalog.models import NetworkAllows, Plan
from controlplane.rendering.policy import pod_templates

PREFIX = "city-platform"
PSA_LEVEL = "restricted"
#: Ranges that are never "the internet": RFC 1918, carrier-grade NAT, link-local
#: (cloud metadata endpoints live at 169.254.169.254).
DEFAULT_PRIVATE_RANGES: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)

_KI = Decimal(1024)
_MI = _KI * 1024
_GI = _MI * 1024
_TI = _GI * 1024


def cpu_quantity(value: Decimal) -> str:
    """Canonical CPU: whole cores as ``2``, else millicores ``1500m`` (rounded up)."""
    milli = math.ceil(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def bytes_quantity(value: Decimal) -> str:
    """Canonical bytes: the largest binary unit that divides it exactly (``3Gi``, ``640Mi``)."""
    whole = math.ceil(value)
    if whole == 0:
        return "0"
    for size, suffix in ((_TI, "Ti"), (_GI, "Gi"), (_MI, "Mi"), (_KI, "Ki")):
        if whole % size == 0:
            return f"{whole // int(size)}{suffix}"
    return str(whole)


def _q(value: Any) -> Decimal:
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return Decimal(0)


def _pod_resources(spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """Effective requests/limits of one pod: sum of containers, or the largest init container."""
    totals = {key: Decimal(0) for key in _KEYS}
    for container in spec.get("containers") or []:
        for key, value in _container_resources(container).items():
            totals[key] += value
    for container in spec.get("initContainers") or []:
        # Init containers run one at a time, before the app containers.
        for key, value in _container_resources(container).items():
            totals[key] = max(totals[key], value)
    return totals


_KEYS = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def _container_resources(container: Any) -> dict[str, Decimal]:
    resources = container.get("resources") or {} if isinstance(container, Mapping) else {}
    out: dict[str, Decimal] = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        for resource in ("cpu", "memory"):
            out[f"{section}.{resource}"] = _q(values.get(resource, 0))
    return out


def _count(value: Any) -> int:
    """A replica/parallelism count; a non-integer counts as 1.

    The schema check reports such a field with its location; the quota must not crash
    first (``int("eighty")``), nor quote the value (it may be a generated credential).
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return 1
    return value


def _pods_of(obj: Mapping[str, Any]) -> int:
    """How many pods of a workload may exist at once (room for one surge pod per Deployment)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        return _count(spec.get("replicas", 1)) + 1
    if kind in {"StatefulSet", "ReplicaSet"}:
        return _count(spec.get("replicas", 1))
    if kind == "Job":
        return _count(spec.get("parallelism", 1))
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return _count(job.get("parallelism", 1))
    return 1


def quota(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``spec.hard`` of the instance's ResourceQuota, from what the stack renders.

    CPU and memory: each workload's pod resources times the pods it may run at once
    (Deployment replicas + 1 surge pod, StatefulSet replicas, Job/CronJob parallelism).
    Storage: PVC requests plus ``volumeClaimTemplates`` times StatefulSet replicas. Counts of
    pods and PVCs likewise. No LoadBalancer or NodePort services (traffic comes in
    through the ingress controller).
    """
    totals = {key: Decimal(0) for key in _KEYS}
    pods = 0
    storage = Decimal(0)
    claims = 0
    for obj in objects:
        kind = obj.get("kind")
        if kind == "PersistentVolumeClaim":
            storage += _q(_storage_request(obj.get("spec") or {}))
            claims += 1
            continue
        for _, template in pod_templates(obj):
            count = _pods_of(obj)
            pods += count
            for key, value in _pod_resources(template.get("spec") or {}).items():
                totals[key] += value * count
        if kind == "StatefulSet":
            spec = obj.get("spec") or {}
            replicas = _count(spec.get("replicas", 1))
            for claim in spec.get("volumeClaimTemplates") or []:
                storage += _q(_storage_request(claim.get("spec") or {})) * replicas
                claims += replicas
    return {
        "requests.cpu": cpu_quantity(totals["requests.cpu"]),
        "requests.memory": bytes_quantity(totals["requests.memory"]),
        "limits.cpu": cpu_quantity(totals["limits.cpu"]),
        "limits.memory": bytes_quantity(totals["limits.memory"]),
        "requests.storage": bytes_quantity(storage),
        "persistentvolumeclaims": str(claims),
        "pods": str(pods),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }


def _storage_request(spec: Mapping[str, Any]) -> Any:
    return ((spec.get("resources") or {}).get("requests") or {}).get("storage", 0)


def baseline(
    *,
    namespace: str,
    plan: Plan,
    network: NetworkAllows,
    instance_name: str,
    stack: Sequence[Mapping[str, Any]],
    ingress_namespace: str,
    private_ranges: Sequence[str],
) -> list[dict[str, Any]]:
    """The baseline objects, in apply order (labels and namespace are added by the caller)."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {
                    f"pod-security.kubernetes.io/{mode}": PSA_LEVEL
                    for mode in ("enforce", "audit", "warn")
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": f"{PREFIX}-quota"},
            "spec": {"hard": quota(stack)},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": f"{PREFIX}-limits"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": plan.cpu.limit, "memory": plan.memory.limit},
                        "defaultRequest": {"cpu": plan.cpu.request, "memory": plan.memory.request},
                    }
                ]
            },
        },
        _policy(
            "default-deny",
            {},
            {"policyTypes": ["Ingress", "Egress"]},
        ),
        _policy(
            "allow-dns",
            {},
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_namespace_peer("kube-system")],
                        "ports": [
                            {"protocol": "UDP", "port": 53},
                            {"protocol": "TCP", "port": 53},
                        ],
                    }
                ],
            },
        ),
        _policy(
            "allow-same-namespace",
            {},
            {
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        ),
    ]
    for exposed in network.ingress:
        objects.append(
            _policy(
                f"allow-ingress-{exposed.component}-{exposed.port}",
                _component(exposed.component, instance_name),
                {
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {
                            "from": [_namespace_peer(ingress_namespace)],
                            "ports": [{"protocol": "TCP", "port": exposed.port}],
                        }
                    ],
                },
            )
        )
    for rule in network.egress:
        objects.append(
            _policy(
                f"allow-egress-{rule.component}",
                _component(rule.component, instance_name),
                {
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [
                                {
                                    "ipBlock": {
                                        "cidr": "0.0.0.0/0",
                                        "except": list(private_ranges),
                                    }
                                }
                            ],
                            "ports": [{"protocol": "TCP", "port": p} for p in rule.ports],
                        }
                    ],
                },
            )
        )
    return objects


def _policy(name: str, selector: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{PREFIX}-{name}"},
        "spec": {"podSelector": selector, **spec},
    }


def _component(component: str, instance_name: str) -> dict[str, Any]:
    return {
        "matchLabels": {
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": instance_name,
        }
    }


def _namespace_peer(namespace: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


#: The label CloudNativePG puts on the pods of the ``Cluster`` named ``postgres``.
CNPG_POD_SELECTOR = {"matchLabels": {"cnpg.io/cluster": "postgres"}}
#: Where an instance manager reaches the Kubernetes API: the ``kubernetes`` Service's
#: ClusterIP (443) or, once a network plugin has translated it, the apiserver's own address
#: (443 or 6443 on most clusters); private addresses, unknown when rendering.
APISERVER_PORTS = (443, 6443)


def cloudnative_pg_policies(
    stack: Iterable[Mapping[str, Any]],
    *,
    operator_namespace: str,
    apiserver_cidrs: Sequence[str] = (),
    object_store_port: int | None = None,
) -> list[dict[str, Any]]:
    """The NetworkPolicies a CloudNativePG ``Cluster`` of the stack needs under the
    default-deny (none without one): the operator (in ``operator_namespace``) reaches each
    instance's status endpoint (8000) and PostgreSQL (5432); the instance manager reaches
    the Kubernetes API (it watches its Cluster) and, with backups, the object store.

    The apiserver is reached at ``apiserver_cidrs`` on 443 and 6443 (anywhere when none are
    declared: its addresses are cluster-internal and unknown to the renderer).

    Ingress on 5432 from the instance's own pods is the baseline's ``allow-same-namespace``.
    """
    if not any(
        obj.get("kind") == "Cluster"
        and str(obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/")
        for obj in stack
    ):
        return []
    egress: list[dict[str, Any]] = [
        {
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in apiserver_cidrs or ("0.0.0.0/0",)],
            "ports": [{"protocol": "TCP", "port": p} for p in APISERVER_PORTS],
        }
    ]
    if object_store_port is not None and (
        apiserver_cidrs or object_store_port not in APISERVER_PORTS
    ):
        # The object store may be on premises (a private address): anywhere, on its port.
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": object_store_port}],
            }
        )
    return [
        _policy(
            "allow-postgres-operator",
            CNPG_POD_SELECTOR,
            {
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [_namespace_peer(operator_namespace)],
                        "ports": [
                            {"protocol": "TCP", "port": 8000},
                            {"protocol": "TCP", "port": 5432},
                        ],
                    }
                ],
            },
        ),
        _policy(
            "allow-postgres-egress",
            CNPG_POD_SELECTOR,
            {"policyTypes": ["Egress"], "egress": egress},
        ),
    ]
