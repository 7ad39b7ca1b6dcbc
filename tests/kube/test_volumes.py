"""Volume growth before the first write: the decision (pure) and the port's apply (emulator).

The API server refuses to shrink a claim, to grow an unbound one, and to grow one whose
StorageClass does not allow expansion. Applied object by object, a stack would then stop
half-way; the port judges every claim first and refuses the whole apply, or keeps the
larger live size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.errors import InvalidInput, Unavailable
from controlplane.kube import KubeTarget
from controlplane.kube.volumes import (
    Verdict,
    VolumeExpansionRefused,
    VolumeNotBound,
    default_class,
    judge,
)
from tests.kube.conftest import FAST_RETRY
from tests.kube.stacks import INSTANCE_LABEL
from tests.kube_emulator import KubeEmulator
from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401

DEFAULT = "storageclass.kubernetes.io/is-default-class"
CLAIM = "v1/PersistentVolumeClaim/postgres-data"


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


# -- the port's apply on the emulator -------------------------------------------------------
# The emulator stores StorageClasses and lets a test bind claims; it does not enforce the
# API server's resize rules, which is what the port must not rely on anyway: these tests
# check that the port refuses *before* writing.


@pytest.fixture
def target(kube_emulator: KubeEmulator) -> Iterator[KubeTarget]:  # noqa: F811
    # Still on the emulator (tests/kube/conftest.py's ``target`` is the real cluster's).
    port = KubeTarget(kube_emulator.api_client(), retry=FAST_RETRY)
    yield port
    port.close()


def _stack(size: str) -> list[dict[str, Any]]:
    """A namespace, a ConfigMap that sorts before the claim, the claim and its workload."""
    labels = {INSTANCE_LABEL: "inst-1"}
    pod = {"app.kubernetes.io/component": "postgres"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1", "labels": labels}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "t1", "labels": labels},
            "data": {"size": size},
        },
        claim(size),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "postgres", "namespace": "t1", "labels": labels},
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


def _bound(emulator: KubeEmulator, target: KubeTarget, size: str, **kw: Any) -> None:
    """The stack applied at ``size``, and its claim bound (what the volume controller does)."""
    target.apply(_stack(size))
    live = emulator.get("PersistentVolumeClaim", "postgres-data", "t1")
    assert live is not None
    emulator.seed({**claim(size, phase="Bound", **kw), "metadata": live["metadata"]})
    emulator.writes.reset()


def _size(emulator: KubeEmulator) -> str:
    live = emulator.get("PersistentVolumeClaim", "postgres-data", "t1")
    assert live is not None
    return str(live["spec"]["resources"]["requests"]["storage"])


def test_growth_the_class_does_not_allow_refuses_the_apply_before_any_write(
    kube_emulator: KubeEmulator,  # noqa: F811
    target: KubeTarget,
) -> None:
    kube_emulator.seed(storage_class("standard", expandable=False, default=True))
    _bound(kube_emulator, target, "5Gi")

    with pytest.raises(VolumeExpansionRefused) as refused:
        target.apply(_stack("10Gi"))

    assert kube_emulator.writes.total == 0  # not even the ConfigMap that sorts first
    assert _size(kube_emulator) == "5Gi"
    error = refused.value
    assert isinstance(error, InvalidInput)  # final: the reconciler does not retry at once
    assert "postgres-data" in error.detail
    (item,) = error.errors
    assert item.location == CLAIM
    assert "has 5Gi and the stack asks 10Gi" in item.message
    assert "'standard' does not allow volume expansion" in item.message
    assert error.hint is not None
    assert "allowVolumeExpansion: true" in error.hint
    assert "keep the current plan" in error.hint


def test_growth_the_class_allows_is_applied(
    kube_emulator: KubeEmulator,  # noqa: F811
    target: KubeTarget,
) -> None:
    kube_emulator.seed(storage_class("standard", expandable=False, default=True))
    kube_emulator.seed(storage_class("fast", expandable=True))
    _bound(kube_emulator, target, "5Gi", storage_class="fast")

    result = target.apply(_stack("10Gi"))

    assert _size(kube_emulator) == "10Gi"
    assert [(c.name, c.verdict, c.storage_class) for c in result.volumes] == [
        ("postgres-data", Verdict.GROWS, "fast")
    ]


def test_an_unbound_claim_that_must_grow_is_retried_with_nothing_written(
    kube_emulator: KubeEmulator,  # noqa: F811
    target: KubeTarget,
) -> None:
    kube_emulator.seed(storage_class("standard", expandable=True, default=True))
    target.apply(_stack("5Gi"))  # the emulator binds nothing: the claim stays unbound
    kube_emulator.writes.reset()

    with pytest.raises(VolumeNotBound) as waiting:
        target.apply(_stack("10Gi"))

    assert isinstance(waiting.value, Unavailable)  # retried with backoff
    assert kube_emulator.writes.total == 0
    assert "not bound yet" in waiting.value.detail


def test_a_smaller_request_keeps_the_larger_live_volume(
    kube_emulator: KubeEmulator,  # noqa: F811
    target: KubeTarget,
) -> None:
    # An operator grew the volume by hand; the stack still asks 5Gi.
    _bound(kube_emulator, target, "20Gi")

    result = target.apply(_stack("5Gi"))

    assert _size(kube_emulator) == "20Gi"
    assert [(c.verdict, c.live, c.desired) for c in result.volumes] == [
        (Verdict.KEEPS, "20Gi", "5Gi")
    ]
    assert kube_emulator.get("ConfigMap", "settings", "t1") is not None


def test_claims_that_keep_their_size_need_no_expansion(
    kube_emulator: KubeEmulator,  # noqa: F811
    target: KubeTarget,
) -> None:
    # The cluster has no StorageClass at all: growing would be refused, re-applying is fine.
    _bound(kube_emulator, target, "5Gi")

    result = target.apply(_stack("5Gi"))

    assert result.volumes == []
    assert _size(kube_emulator) == "5Gi"
