"""What the real apiserver refuses on update, against what the catalogue lint predicts.

Two things are proven with server-side dry-run applies (nothing is changed by them):

1. Every plan change (both directions) and every declared upgrade of every shipped service is
   accepted: each version's smallest plan is applied for real, then every other render of
   the same instance is dry-run applied over it, exactly as the reconciler would send it.
2. The table of immutable fields (``controlplane.rendering.immutability``) agrees with the
   apiserver: for each kind of change below, ``refused_changes`` predicts a refusal exactly
   when the apiserver answers 422 (or 403 for a claim that may not grow).
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.versions import matches
from controlplane.kube.client import KubeClient
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.immutability import refused_changes
from tests.cluster.fixtures import Cluster

CATALOG = load_catalog()
RENDERER = Renderer(server_secret=b"cluster-tier-secret")
SERVICES = sorted(CATALOG.services)
_ADMISSION_KINDS = frozenset({"ResourceQuota", "LimitRange"})


def _render(
    release: ServiceRelease, plan: str, tenant: TenantRef, instance: InstanceRef, floor: str = ""
) -> tuple[tuple[dict[str, Any], ...], str]:
    stack = RENDERER.render(
        release,
        plan=plan,
        tenant=tenant,
        instance=instance,
        parameters={},
        storage_floor=floor or None,
    )
    return stack.objects, stack.storage


def _dry_run(cluster: Cluster, objects: Any) -> str:
    """Server-side dry-run apply as the platform's field manager; '' or kubectl's error."""
    items = objects if isinstance(objects, list | tuple) else [objects]
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})
    result = cluster.local_kubectl_input(
        document,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=city-platform",
        "--dry-run=server",
        "-f",
        "-",
    )
    return "" if result.returncode == 0 else result.stderr.strip()


@pytest.fixture(scope="module")
def port(cluster: Cluster) -> Iterator[KubeClient]:
    target = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield target
    target.close()


@pytest.mark.parametrize("service", SERVICES)
def test_every_plan_change_and_upgrade_is_accepted(
    cluster: Cluster, port: KubeClient, service: str
) -> None:
    definition = CATALOG.definition(service)
    tenant = TenantRef(slug=f"u{secrets.token_hex(2)}", name="Updates", nis_code="44021")
    refused: list[str] = []
    compared = 0
    for index, version in enumerate(definition.versions):
        release = CATALOG.release(service, version.version)
        # A namespace per version, distinct by construction: the previous version's is still
        # being deleted (not awaited), and an apply into it is refused.
        instance = InstanceRef(name=f"{service[:16]}-v{index}-{secrets.token_hex(2)}", id=_uuid())
        plans = [p.name for p in release.plans]
        base, storage = _render(release, plans[0], tenant, instance)
        namespace = base[0]["metadata"]["name"]
        port.apply(list(base))
        try:
            # A claim may only grow once it is bound (the apiserver refuses any change of a
            # pending claim's spec), as the reconciler's volume check knows: wait for it here.
            _wait_bound(cluster, namespace)
            # The reconciler never asks a volume to shrink: a later render keeps the floor.
            renders = {plan: _render(release, plan, tenant, instance, storage)[0] for plan in plans}
            for newer in definition.versions:
                if newer.version != version.version and matches(
                    version.version, newer.upgrade_from
                ):
                    upgraded = CATALOG.release(service, newer.version)
                    renders[f"upgrade to {newer.version}"] = _render(
                        upgraded, plans[0], tenant, instance, storage
                    )[0]
            for label, objects in renders.items():
                compared += 1
                # The reconciler writes the namespace's quota and limits before the objects
                # they admit (apply order), and a dry run changes nothing: so the new render's
                # quota is applied for real, the rest dry-run over it, then the quota put back.
                port.apply([o for o in objects if o["kind"] in _ADMISSION_KINDS])
                try:
                    if error := _dry_run(cluster, objects):
                        refused.append(f"{service} {version.version} {plans[0]} → {label}: {error}")
                finally:
                    port.apply([o for o in base if o["kind"] in _ADMISSION_KINDS])
                predicted = refused_changes(base, objects, plan_change=not label.startswith("up"))
                assert not predicted, (
                    f"the lint predicts a refusal the catalogue should not have: {predicted}"
                )
        finally:
            port.delete_namespace(namespace, wait=False)
    assert compared
    assert not refused, "\n".join(refused)


# -- the table against the apiserver ---------------------------------------------------------


def _meta(kind: str, api_version: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def _pod_template(labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1.0",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _deployment(ns: str) -> dict[str, Any]:
    obj = _meta("Deployment", "apps/v1", ns, "web")
    obj["spec"] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": _pod_template({"app": "web"}),
    }
    return obj


def _statefulset(ns: str) -> dict[str, Any]:
    obj = _meta("StatefulSet", "apps/v1", ns, "db")
    obj["spec"] = {
        "replicas": 1,
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": _pod_template({"app": "db"}),
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
    }
    return obj


def _pvc(ns: str) -> dict[str, Any]:
    obj = _meta("PersistentVolumeClaim", "v1", ns, "data")
    obj["spec"] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}
    return obj


def _configmap(ns: str, *, immutable: bool) -> dict[str, Any]:
    obj = _meta("ConfigMap", "v1", ns, f"settings-{int(immutable)}")
    obj["data"] = {"greeting": "hallo"}
    if immutable:
        obj["immutable"] = True
    return obj


def _secret(ns: str) -> dict[str, Any]:
    obj = _meta("Secret", "v1", ns, "creds")
    obj["type"] = "Opaque"
    obj["stringData"] = {"password": "x"}
    return obj


def _rolebinding(ns: str) -> dict[str, Any]:
    obj = _meta("RoleBinding", "rbac.authorization.k8s.io/v1", ns, "readers")
    obj["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "view",
    }
    obj["subjects"] = [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]
    return obj


def _job(ns: str) -> dict[str, Any]:
    obj = _meta("Job", "batch/v1", ns, "migrate")
    template = _pod_template({"app": "migrate"})
    template["spec"]["restartPolicy"] = "Never"
    obj["spec"] = {"template": template, "backoffLimit": 0}
    return obj


def _set(path: str, value: Any) -> Any:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if leaf.isdigit():
            node[int(leaf)] = value
        else:
            node[leaf] = value
        return out

    return change


#: (what, base object factory, change, the apiserver refuses?)
CASES = [
    ("Deployment replicas", _deployment, _set("spec.replicas", 3), False),
    (
        "Deployment pod template image",
        _deployment,
        _set("spec.template.spec.containers.0.image", "registry.example/app:2.0"),
        False,
    ),
    (
        "Deployment selector",
        _deployment,
        _set("spec.selector", {"matchLabels": {"app": "web", "tier": "x"}}),
        True,
    ),
    ("StatefulSet replicas", _statefulset, _set("spec.replicas", 2), False),
    (
        "StatefulSet claim template size",
        _statefulset,
        _set("spec.volumeClaimTemplates.0.spec.resources", {"requests": {"storage": "2Gi"}}),
        True,
    ),
    ("StatefulSet serviceName", _statefulset, _set("spec.serviceName", "db2"), True),
    (
        "StatefulSet podManagementPolicy",
        _statefulset,
        _set("spec.podManagementPolicy", "Parallel"),
        True,
    ),
    ("PVC grows", _pvc, _set("spec.resources", {"requests": {"storage": "4Gi"}}), False),
    ("PVC shrinks", _pvc, _set("spec.resources", {"requests": {"storage": "1Gi"}}), True),
    ("PVC access modes", _pvc, _set("spec.accessModes", ["ReadWriteMany"]), True),
    (
        "ConfigMap data",
        lambda ns: _configmap(ns, immutable=False),
        _set("data", {"greeting": "dag"}),
        False,
    ),
    (
        "immutable ConfigMap data",
        lambda ns: _configmap(ns, immutable=True),
        _set("data", {"greeting": "dag"}),
        True,
    ),
    ("Secret type", _secret, _set("type", "kubernetes.io/basic-auth"), True),
    (
        "RoleBinding roleRef",
        _rolebinding,
        _set(
            "roleRef",
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        ),
        True,
    ),
    ("Job backoffLimit", _job, _set("spec.backoffLimit", 2), False),
    (
        "Job pod template image",
        _job,
        _set("spec.template.spec.containers.0.image", "registry.example/app:2.0"),
        True,
    ),
]


@pytest.mark.parametrize(("what", "make", "change", "refused"), CASES, ids=[c[0] for c in CASES])
def test_the_immutable_field_table_agrees_with_the_apiserver(
    cluster: Cluster, namespace: str, what: str, make: Any, change: Any, refused: bool
) -> None:
    before = make(namespace)
    assert _dry_run(cluster, before) == "", "the base object itself must be accepted"
    result = cluster.local_kubectl_input(
        json.dumps(before), "apply", "--server-side", "--field-manager=city-platform", "-f", "-"
    )
    assert result.returncode == 0, result.stderr
    if before["kind"] == "PersistentVolumeClaim":
        _wait_bound(cluster, namespace)
    after = change(before)

    error = _dry_run(cluster, after)
    predicted = refused_changes([before], [after], plan_change=False)

    assert bool(error) is refused, f"{what}: the apiserver answered {error or 'OK'!r}"
    assert bool(predicted) is refused, f"{what}: the table predicted {predicted}"


def _wait_bound(cluster: Cluster, namespace: str) -> None:
    def bound() -> bool:
        claims = cluster.objects("PersistentVolumeClaim", namespace, api_version="v1")
        return all(c["status"]["phase"] == "Bound" for c in claims)

    cluster.wait_for(f"the claims in {namespace} to be bound", bound, timeout=180, interval=0.5)


def _uuid() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-8{raw[17:20]}-{raw[20:32]}"
