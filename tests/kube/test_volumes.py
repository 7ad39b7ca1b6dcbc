"""Volume growth before the first write: the decision (pure) and the port's apply (the real
cluster, through the fault proxy that counts writes).

The API server refuses to shrink a claim, to grow an unbound one, and to grow one whose
StorageClass does not allow expansion (the first tests below show it does). Applied object
by object, a stack would then stop half-way; the port judges every claim first and refuses
the whole apply, or keeps the larger live size.

The cluster's claims are bound by its host-path provisioner as soon as they are created.
StorageClasses a test needs (one that does not allow expansion, one whose provisioner
nobody runs) are its own, with unique names, and deleted after it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from controlplane.errors import InvalidInput, Unavailable
from controlplane.kube import KubeClient
from controlplane.kube.volumes import (
    Verdict,
    VolumeExpansionRefused,
    VolumeNotBound,
    default_class,
    judge,
)
from tests.cluster.fixtures import Cluster
from tests.cluster.proxy import FaultProxy
from tests.kube.stacks import INSTANCE_LABEL

DEFAULT = "storageclass.kubernetes.io/is-default-class"
CLAIM = "v1/PersistentVolumeClaim/postgres-data"
#: The cluster's provisioner of host-path volumes (in kube-controller-manager).
HOST_PATH = "kubernetes.io/host-path"


def claim(
    size: str,
    *,
    namespace: str = "t1",
    storage_class: str | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "postgres-data",
            "namespace": namespace,
            "labels": {INSTANCE_LABEL: "inst-1"},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
    if storage_class is not None:
        obj["spec"]["storageClassName"] = storage_class
    if phase is not None:
        obj["status"] = {"phase": phase, "capacity": {"storage": size}}
    return obj


def storage_class(
    name: str, *, expandable: bool | None, default: bool = False, created: str = ""
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT: "true"}
    if created:
        meta["creationTimestamp"] = created
    obj: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta,
        "provisioner": "rancher.io/local-path",
    }
    if expandable is not None:
        obj["allowVolumeExpansion"] = expandable
    return obj


# -- the decision ---------------------------------------------------------------------------


def test_a_new_or_unchanged_claim_needs_no_decision() -> None:
    assert judge(claim("10Gi"), None, []) is None
    assert judge(claim("10Gi"), claim("10Gi", phase="Bound"), []) is None
    # Equal amounts written differently are the same size.
    assert judge(claim("10Gi"), claim("10240Mi", phase="Bound"), []) is None


def test_a_smaller_request_keeps_the_live_size_without_asking_the_class() -> None:
    change = judge(claim("5Gi"), claim("10Gi", phase="Bound"), [])

    assert change is not None
    assert (change.verdict, change.live, change.desired) == (Verdict.KEEPS, "10Gi", "5Gi")


@pytest.mark.parametrize(
    ("classes", "live_class", "verdict", "named"),
    [
        # The live claim names its class.
        ([storage_class("fast", expandable=True)], "fast", Verdict.GROWS, "fast"),
        ([storage_class("fast", expandable=False)], "fast", Verdict.NOT_EXPANDABLE, "fast"),
        # allowVolumeExpansion unset means no.
        ([storage_class("fast", expandable=None)], "fast", Verdict.NOT_EXPANDABLE, "fast"),
        # A class that no longer exists cannot allow anything.
        ([], "gone", Verdict.NOT_EXPANDABLE, "gone"),
        # No class on the claim: the cluster's default decides.
        (
            [
                storage_class("slow", expandable=False),
                storage_class("std", expandable=True, default=True),
            ],
            None,
            Verdict.GROWS,
            "std",
        ),
        # "" means no class at all (a statically bound volume), whatever the default says.
        ([storage_class("std", expandable=True, default=True)], "", Verdict.NOT_EXPANDABLE, None),
        # No class and no default class.
        ([storage_class("slow", expandable=True)], None, Verdict.NOT_EXPANDABLE, None),
    ],
)
def test_growth_is_decided_by_the_claims_storage_class(
    classes: list[dict[str, Any]], live_class: str | None, verdict: Verdict, named: str | None
) -> None:
    change = judge(claim("10Gi"), claim("5Gi", storage_class=live_class, phase="Bound"), classes)

    assert change is not None
    assert (change.verdict, change.storage_class) == (verdict, named)
    assert (change.live, change.desired) == ("5Gi", "10Gi")


def test_an_unbound_claim_cannot_grow_yet() -> None:
    classes = [storage_class("std", expandable=True, default=True)]

    change = judge(claim("10Gi"), claim("5Gi", phase="Pending"), classes)

    assert change is not None
    assert change.verdict == Verdict.NOT_BOUND


def test_the_newest_default_class_is_the_default() -> None:
    older = storage_class("a", expandable=True, default=True, created="2024-01-01T00:00:00Z")
    newer = storage_class("b", expandable=False, default=True, created="2025-01-01T00:00:00Z")
    beta = storage_class("c", expandable=True)
    beta["metadata"]["annotations"] = {
        "storageclass.beta.kubernetes.io/is-default-class": "true",
    }

    assert default_class([older, newer]) is newer
    assert default_class([storage_class("x", expandable=True), beta]) is beta
    assert default_class([storage_class("x", expandable=True)]) is None


# -- the port's apply on the real cluster ---------------------------------------------------

StorageClassFactory = Callable[..., str]


@pytest.fixture
def make_class(cluster: Cluster) -> Iterator[StorageClassFactory]:
    """Makes StorageClasses of the test's own (unique names); deleted after the test."""
    storage = kubernetes.client.StorageV1Api(cluster.api_client)
    names: list[str] = []

    def make(*, expandable: bool, provisioner: str = HOST_PATH) -> str:
        name = f"t-volumes-{secrets.token_hex(4)}"
        body = storage_class(name, expandable=expandable)
        body["provisioner"] = provisioner
        body["reclaimPolicy"] = "Delete"
        storage.create_storage_class(body)
        names.append(name)
        return name

    yield make
    for name in names:
        with contextlib.suppress(ApiException):
            storage.delete_storage_class(name)


def _stack(namespace: str, size: str, storage_class: str | None = None) -> list[dict[str, Any]]:
    """The namespace, a ConfigMap that sorts before the claim, the claim and its workload."""
    labels = {INSTANCE_LABEL: "inst-1"}
    pod = {"app.kubernetes.io/component": "postgres"}
    meta: dict[str, Any] = {"labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, **meta}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace, **meta},
            "data": {"size": size},
        },
        claim(size, namespace=namespace, storage_class=storage_class),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "postgres", "namespace": namespace, **meta},
            "spec": {
                "serviceName": "postgres",
                "replicas": 1,
                "selector": {"matchLabels": pod},
                "template": {
                    "metadata": {"labels": pod},
                    "spec": {
                        "containers": [{"name": "postgres", "image": "postgres:16.6"}],
                        "volumes": [
                            {
                                "name": "data",
                                "persistentVolumeClaim": {"claimName": "postgres-data"},
                            }
                        ],
                    },
                },
            },
        },
    ]


def _claim(cluster: Cluster, namespace: str) -> dict[str, Any]:
    live = cluster.get("PersistentVolumeClaim", "postgres-data", namespace, api_version="v1")
    assert live is not None
    return live


def _size(cluster: Cluster, namespace: str) -> str:
    return str(_claim(cluster, namespace)["spec"]["resources"]["requests"]["storage"])


def _bound(
    cluster: Cluster, target: KubeClient, namespace: str, size: str, storage_class: str
) -> None:
    """The stack applied at ``size``, and its claim bound by the cluster's provisioner."""
    target.apply(_stack(namespace, size, storage_class))
    cluster.wait_for(
        f"claim postgres-data in {namespace} to be bound",
        lambda: (_claim(cluster, namespace).get("status") or {}).get("phase") == "Bound",
    )


def _resize(cluster: Cluster, namespace: str, size: str) -> None:
    """What an operator (or the stack applied object by object) would write: the new size."""
    kubernetes.client.CoreV1Api(cluster.api_client).patch_namespaced_persistent_volume_claim(
        "postgres-data", namespace, {"spec": {"resources": {"requests": {"storage": size}}}}
    )


# What the port must not rely on being allowed: the API server's own refusals.


def test_the_api_server_refuses_growth_the_class_does_not_allow(
    cluster: Cluster, target: KubeClient, namespace: str, make_class: StorageClassFactory
) -> None:
    _bound(cluster, target, namespace, "5Gi", make_class(expandable=False))

    with pytest.raises(ApiException) as refused:
        _resize(cluster, namespace, "10Gi")

    assert refused.value.status == 403
    assert "storageclass that provisions the pvc must support resize" in refused.value.body


def test_the_api_server_refuses_to_shrink_or_to_grow_an_unbound_claim(
    cluster: Cluster, target: KubeClient, namespace: str, make_class: StorageClassFactory
) -> None:
    _bound(cluster, target, namespace, "5Gi", make_class(expandable=True))
    with pytest.raises(ApiException) as shrink:
        _resize(cluster, namespace, "1Gi")
    assert shrink.value.status == 422

    nobody = make_class(expandable=True, provisioner=f"city-platform.be/nobody-{namespace}")
    pending = claim("5Gi", namespace=namespace, storage_class=nobody)
    pending["metadata"]["name"] = "pending"
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    core.create_namespaced_persistent_volume_claim(namespace, pending)
    with pytest.raises(ApiException) as unbound:
        core.patch_namespaced_persistent_volume_claim(
            "pending", namespace, {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}
        )
    assert unbound.value.status == 422


# What the port does about them, before its first write.


def test_growth_the_class_does_not_allow_refuses_the_apply_before_any_write(
    kube: FaultProxy,
    cluster: Cluster,
    target: KubeClient,
    namespace: str,
    make_class: StorageClassFactory,
) -> None:
    # The cluster's default class allows expansion; the claim's own class decides.
    fixed = make_class(expandable=False)
    _bound(cluster, target, namespace, "5Gi", fixed)
    kube.writes.reset()

    with pytest.raises(VolumeExpansionRefused) as refused:
        target.apply(_stack(namespace, "10Gi", fixed))

    assert kube.writes.total == 0, kube.writes  # not even the Namespace that sorts first
    assert _size(cluster, namespace) == "5Gi"
    settings = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
    assert settings is not None
    assert settings["data"] == {"size": "5Gi"}
    error = refused.value
    assert isinstance(error, InvalidInput)  # final: the reconciler does not retry at once
    assert "postgres-data" in error.detail
    (item,) = error.errors
    assert item.location == CLAIM
    assert "has 5Gi and the stack asks 10Gi" in item.message
    assert f"{fixed!r} does not allow volume expansion" in item.message
    assert error.hint is not None
    assert "allowVolumeExpansion: true" in error.hint
    assert "keep the current plan" in error.hint


def test_growth_the_class_allows_is_applied(
    cluster: Cluster, target: KubeClient, namespace: str, make_class: StorageClassFactory
) -> None:
    fast = make_class(expandable=True)
    _bound(cluster, target, namespace, "5Gi", fast)

    result = target.apply(_stack(namespace, "10Gi", fast))

    assert _size(cluster, namespace) == "10Gi"
    assert [(c.name, c.verdict, c.storage_class) for c in result.volumes] == [
        ("postgres-data", Verdict.GROWS, fast)
    ]


def test_an_unbound_claim_that_must_grow_is_retried_with_nothing_written(
    kube: FaultProxy,
    cluster: Cluster,
    target: KubeClient,
    namespace: str,
    make_class: StorageClassFactory,
) -> None:
    # An expandable class whose provisioner nobody runs: the claim stays Pending.
    nobody = make_class(expandable=True, provisioner=f"city-platform.be/nobody-{namespace}")
    target.apply(_stack(namespace, "5Gi", nobody))
    assert (_claim(cluster, namespace).get("status") or {}).get("phase") == "Pending"
    kube.writes.reset()

    with pytest.raises(VolumeNotBound) as waiting:
        target.apply(_stack(namespace, "10Gi", nobody))

    assert isinstance(waiting.value, Unavailable)  # retried with backoff
    assert kube.writes.total == 0, kube.writes
    assert "not bound yet" in waiting.value.detail
    assert _size(cluster, namespace) == "5Gi"


def test_a_smaller_request_keeps_the_larger_live_volume(
    cluster: Cluster, target: KubeClient, namespace: str, make_class: StorageClassFactory
) -> None:
    fast = make_class(expandable=True)
    _bound(cluster, target, namespace, "5Gi", fast)
    _resize(cluster, namespace, "20Gi")  # an operator grew the volume by hand

    result = target.apply(_stack(namespace, "5Gi", fast))

    assert _size(cluster, namespace) == "20Gi"
    assert [(c.verdict, c.live, c.desired) for c in result.volumes] == [
        (Verdict.KEEPS, "20Gi", "5Gi")
    ]
    # The rest of the stack was applied.
    assert cluster.get("StatefulSet", "postgres", namespace, api_version="apps/v1") is not None


def test_claims_that_keep_their_size_need_no_expansion(
    cluster: Cluster, target: KubeClient, namespace: str, make_class: StorageClassFactory
) -> None:
    # Growing would be refused; re-applying at the same size is fine.
    fixed = make_class(expandable=False)
    _bound(cluster, target, namespace, "5Gi", fixed)

    result = target.apply(_stack(namespace, "5Gi", fixed))

    assert result.volumes == []
    assert _size(cluster, namespace) == "5Gi"
    assert "postgres-data" in {oid.rsplit("/", 1)[-1] for oid in result.applied}
