"""The Kubernetes port against the emulator, through the real ``kubernetes`` client."""

from __future__ import annotations

import socket
from pathlib import Path

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from controlplane.errors import Conflict, InvalidInput, Unavailable
from controlplane.kube import (
    ApplyConflict,
    KubeTarget,
    ObjectRejected,
    RetryPolicy,
    TargetUnavailable,
    UnknownKind,
    apply_rank,
)
from tests.kube.conftest import FAST_RETRY
from tests.kube.stacks import INSTANCE_LABEL, ids, stack
from tests.kube_emulator import KubeEmulator

DEPLOYMENT = "apps/v1/Deployment/web"


def test_apply_creates_every_object_in_apply_order(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    objects = stack("t1")

    result = target.apply(objects)

    assert set(result.applied) == ids(objects)
    assert result.writes == len(objects)
    kinds_written = [kind for method, _path, kind in kube_emulator.writes.log if method == "PATCH"]
    assert kinds_written[0] == "Namespace"
    ranks = [apply_rank(str(kind)) for kind in kinds_written]
    assert ranks == sorted(ranks)
    assert kinds_written.index("Deployment") < kinds_written.index("Service")
    assert kinds_written.index("ConfigMap") < kinds_written.index("Deployment")
    assert [o["metadata"]["name"] for o in kube_emulator.objects("ConfigMap", "t1")] == [
        "web-config"
    ]
    live = kube_emulator.get("Deployment", "web", "t1")
    assert live is not None
    managers = {m["manager"]: m["operation"] for m in live["metadata"]["managedFields"]}
    assert managers == {"city-platform": "Apply"}


def test_apply_with_nothing_selected_makes_zero_writes(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    objects = stack("t1")
    target.apply(objects)
    kube_emulator.writes.reset()

    result = target.apply(objects, only=set())

    assert kube_emulator.writes.total == 0
    assert result.applied == []
    assert set(result.skipped) == ids(objects)


def test_apply_only_writes_the_named_objects(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    objects = stack("t1")
    target.apply(objects)
    kube_emulator.writes.reset()

    result = target.apply(stack("t1", replicas=3), only={DEPLOYMENT})

    assert result.applied == [DEPLOYMENT]
    assert kube_emulator.writes.total == 1
    assert dict(kube_emulator.writes.by_kind) == {"Deployment": 1}
    live = kube_emulator.get("Deployment", "web", "t1")
    assert live is not None
    assert live["spec"]["replicas"] == 3


def test_reapplying_identical_objects_changes_nothing_on_the_server(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    objects = stack("t1")
    first = target.apply(objects)
    second = target.apply(objects)

    for oid, live in first.live.items():
        assert (
            second.live[oid]["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        )


def test_field_owned_by_another_manager_conflicts_unless_forced(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1"))
    apps = kubernetes.client.AppsV1Api(kube_emulator.api_client())
    scale = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    scale["spec"] = {"replicas": 5}

    with pytest.raises(ApiException) as refused:
        apps.patch_namespaced_deployment(
            "web",
            "t1",
            scale,
            field_manager="ops-team",
            _content_type="application/apply-patch+yaml",
        )
    assert refused.value.status == 409
    assert "city-platform" in refused.value.body
    assert ".spec.replicas" in refused.value.body

    apps.patch_namespaced_deployment(
        "web",
        "t1",
        scale,
        field_manager="ops-team",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    taken = kube_emulator.get("Deployment", "web", "t1")
    assert taken is not None
    assert taken["spec"]["replicas"] == 5

    # The platform forces its own fields back on the next apply.
    target.apply(stack("t1"), only={DEPLOYMENT})
    back = kube_emulator.get("Deployment", "web", "t1")
    assert back is not None
    assert back["spec"]["replicas"] == 2
    owners = {
        m["manager"]: m["fieldsV1"].get("f:spec", {}) for m in back["metadata"]["managedFields"]
    }
    assert "f:replicas" in owners["city-platform"]
    assert "f:replicas" not in owners.get("ops-team", {})


def test_a_field_manager_conflict_is_raised_as_apply_conflict(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1"))
    kube_emulator.faults.add(
        409,
        method="PATCH",
        message='Apply failed with 1 conflict: conflict with "x": .spec.replicas',
    )

    with pytest.raises(ApplyConflict) as raised:
        target.apply(stack("t1"), only={DEPLOYMENT})

    assert isinstance(raised.value, Conflict)
    assert kube_emulator.writes.log[-1][0] == "PATCH"
    assert kube_emulator.faults.fired == 1  # not retried


def test_label_selector_lists(kube_emulator: KubeEmulator, target: KubeTarget) -> None:
    target.apply(stack("t1")[5:6])  # the Namespace
    for name, labels in {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "db", "env": "prod"},
        "c": {"tier": "cache"},
    }.items():
        kube_emulator.seed(
            {"kind": "ConfigMap", "metadata": {"name": name, "namespace": "t1", "labels": labels}}
        )

    def names(selector: str) -> list[str]:
        items = target.list_objects("v1", "ConfigMap", "t1", label_selector=selector)
        return sorted(i["metadata"]["name"] for i in items)

    assert names("tier=web") == ["a"]
    assert names("tier==db") == ["b"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web,cache)") == ["a", "c"]
    assert names("tier notin (web, cache)") == ["b"]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c"]
    assert names("env=prod,tier!=db") == ["a"]
    assert names("") == ["a", "b", "c"]


def test_prune_removes_exactly_the_stale_objects(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    old = stack("t1", extra=True)
    target.apply(old)
    # Another instance in the same namespace, an unlabelled object, and a stray of ours that
    # the inventory does not know about.
    kube_emulator.seed(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "other", "namespace": "t1", "labels": {INSTANCE_LABEL: "inst-2"}},
        }
    )
    kube_emulator.seed({"kind": "ConfigMap", "metadata": {"name": "manual", "namespace": "t1"}})
    kube_emulator.seed(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "stray", "namespace": "t1", "labels": {INSTANCE_LABEL: "inst-1"}},
        }
    )
    new = stack("t1", extra=False)

    deleted = target.prune("t1", keep=ids(new), inventory=sorted(ids(old)), instance_id="inst-1")

    assert set(deleted) == {
        "batch/v1/Job/migrate",
        "policy/v1/PodDisruptionBudget/web",
        "v1/ConfigMap/stray",
    }
    # Reverse apply order: what exposes workloads goes before workloads and configuration.
    assert deleted.index("policy/v1/PodDisruptionBudget/web") < deleted.index(
        "batch/v1/Job/migrate"
    )
    assert sorted(o["metadata"]["name"] for o in kube_emulator.objects("ConfigMap", "t1")) == [
        "manual",
        "other",
        "web-config",
    ]
    assert kube_emulator.objects("Job", "t1") == []
    assert kube_emulator.get("Namespace", "t1") is not None
    # Pruning again finds nothing: deletions of missing objects are not reported.
    assert target.prune("t1", keep=ids(new), inventory=sorted(ids(old)), instance_id="inst-1") == []


def test_prune_does_not_treat_an_api_version_change_as_stale(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1"))
    keep = {i.replace("policy/v1/", "policy/v1beta1/") for i in ids(stack("t1"))}

    deleted = target.prune(
        "t1", keep=keep, inventory=sorted(ids(stack("t1"))), instance_id="inst-1"
    )

    assert deleted == []


def test_readiness_follows_workload_status(kube_emulator: KubeEmulator, target: KubeTarget) -> None:
    objects = stack("t1")
    target.apply(objects)
    assert target.readiness(objects).ready

    kube_emulator.set_ready(False, kind="Deployment", namespace="t1")
    verdict = target.readiness(objects)
    assert not verdict.ready
    assert not verdict.failed
    assert verdict.messages == [f"{DEPLOYMENT}: 0 of 2 replicas available"]

    kube_emulator.set_ready("fail", kind="Job")
    verdict = target.readiness(objects)
    assert verdict.failed
    assert "job failed" in verdict.objects["batch/v1/Job/migrate"].message

    kube_emulator.set_ready(True)
    kube_emulator.set_ready(True, kind="Deployment", namespace="t1")
    kube_emulator.set_ready(True, kind="Job")
    kube_emulator.set_ready("stalled", kind="Deployment", name="web")
    target.apply(stack("t1", replicas=4), only={DEPLOYMENT})
    verdict = target.readiness(objects)
    assert "generation 2, observed 1" in verdict.objects[DEPLOYMENT].message


def test_readiness_of_a_missing_workload_says_to_apply_it(target: KubeTarget) -> None:
    verdict = target.readiness(stack("nowhere"))

    assert not verdict.ready
    assert "does not exist" in verdict.objects[DEPLOYMENT].message


def test_delete_namespace_waits_until_it_is_gone(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1"))
    kube_emulator.namespace_delete_delay = 0.2

    target.delete_namespace("t1", wait=True, timeout=10)

    assert kube_emulator.get("Namespace", "t1") is None
    assert kube_emulator.objects("Deployment", "t1") == []
    assert kube_emulator.objects("ConfigMap", "t1") == []
    target.delete_namespace("t1")  # already gone: nothing to do


def test_delete_namespace_gives_up_after_the_timeout(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1"))
    kube_emulator.namespace_delete_delay = 60

    with pytest.raises(TargetUnavailable, match="still exists") as raised:
        target.delete_namespace("t1", timeout=0.05)

    assert "finalizers" in (raised.value.hint or "")


def test_retries_get_through_transient_faults(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    kube_emulator.faults.add(429, method="PATCH", count=2, retry_after=0)
    kube_emulator.faults.add(500, method="PATCH", count=1)
    kube_emulator.faults.add(503, method="PATCH", count=1)
    kube_emulator.faults.add(409, method="PATCH", count=1)  # optimistic concurrency
    kube_emulator.faults.add(500, method="GET", count=1)  # discovery fails once too
    objects = stack("t1")

    result = target.apply(objects)

    assert set(result.applied) == ids(objects)
    assert kube_emulator.faults.fired == 6
    assert result.attempts == result.writes + 5
    assert len(kube_emulator.objects("Deployment", "t1")) == 1


def test_a_slow_answer_times_out_and_is_retried(kube_emulator: KubeEmulator) -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.001, request_timeout=0.3, seed=1)
    target = KubeTarget(kube_emulator.api_client(), retry=policy)
    kube_emulator.faults.add(delay=1.0, method="PATCH", count=1)

    result = target.apply(stack("t1")[5:6])

    assert result.applied == ["v1/Namespace/t1"]
    assert result.attempts == 2


def test_gives_up_with_target_unavailable_after_the_budget(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    kube_emulator.faults.add(503, method="PATCH")

    with pytest.raises(TargetUnavailable) as raised:
        target.apply(stack("t1"))

    assert isinstance(raised.value, Unavailable)
    assert isinstance(raised.value.__cause__, ApiException)
    assert "v1/Namespace/t1" in raised.value.detail
    assert "503" in raised.value.detail
    assert kube_emulator.writes.total == FAST_RETRY.attempts


def test_an_unreachable_cluster_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{port}"
    config.retries = 0
    policy = RetryPolicy(attempts=2, base_delay=0.001, request_timeout=1.0, seed=1)
    target = KubeTarget(kubernetes.client.ApiClient(config), retry=policy)

    with pytest.raises(TargetUnavailable, match="attempt"):
        target.apply(stack("t1"))


def test_an_invalid_object_is_rejected_naming_the_field(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    objects = stack("t1")
    target.apply(objects[5:6])
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["selector"]["matchLabels"] = {"app": "something-else"}
    kube_emulator.writes.reset()

    with pytest.raises(ObjectRejected) as raised:
        target.apply([deployment])

    assert isinstance(raised.value, InvalidInput)
    assert "spec.template.metadata.labels" in str(raised.value)
    assert raised.value.errors[0].location == f"{DEPLOYMENT}: spec.template.metadata.labels"
    assert kube_emulator.writes.total == 1  # a 422 is not retried


def test_secret_values_never_reach_messages(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    target.apply(stack("t1")[5:6])
    secret = next(o for o in stack("t1") if o["kind"] == "Secret")
    kube_emulator.faults.add(
        422,
        method="PATCH",
        message='Secret "web-credentials" is invalid: '
        'data[password]: Invalid value: "s3cr3t-value"',
    )

    with pytest.raises(ObjectRejected) as raised:
        target.apply([secret])

    assert "data[password]" in str(raised.value)
    assert "s3cr3t-value" not in str(raised.value)
    assert "s3cr3t-value" not in str(raised.value.__cause__)


def test_a_namespaced_object_without_namespace_is_rejected(target: KubeTarget) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}

    with pytest.raises(ObjectRejected, match=r"no metadata\.namespace"):
        target.apply([config_map])


def test_applying_into_a_missing_namespace_is_rejected(target: KubeTarget) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "absent"},
    }

    with pytest.raises(ObjectRejected, match="namespace 'absent' does not exist"):
        target.apply([config_map])


def test_a_kind_the_cluster_does_not_serve_is_reported(target: KubeTarget) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

    with pytest.raises(UnknownKind, match="Widget"):
        target.apply([widget])


def test_observe_returns_live_objects_and_none_for_missing(target: KubeTarget) -> None:
    target.apply(stack("t1"))

    seen = target.observe("t1", [DEPLOYMENT, "v1/ConfigMap/absent", "v1/Namespace/t1"])

    live = seen[DEPLOYMENT]
    assert live is not None
    assert live["spec"]["replicas"] == 2
    assert seen["v1/ConfigMap/absent"] is None
    assert seen["v1/Namespace/t1"] is not None


def test_from_kubeconfig_talks_to_the_cluster_in_the_file(
    kube_emulator: KubeEmulator, tmp_path: Path
) -> None:
    path = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    target = KubeTarget.from_kubeconfig(str(path), retry=FAST_RETRY)

    target.apply(stack("t1")[5:6])

    assert kube_emulator.get("Namespace", "t1") is not None
    target.close()


def test_twenty_percent_faults_still_converge(
    kube_emulator: KubeEmulator, target: KubeTarget
) -> None:
    # About one request in five fails with one of the retryable statuses.
    for status in (429, 500, 503, 409):
        kube_emulator.faults.add(status, probability=0.055)
    namespaces = [f"city-{n}" for n in range(12)]
    for namespace in namespaces:
        for _round in range(2):
            target.apply(stack(namespace, instance_id=namespace))
        target.prune(
            namespace,
            keep=ids(stack(namespace, extra=False)),
            inventory=sorted(ids(stack(namespace))),
            instance_id=namespace,
        )
    fired = kube_emulator.faults.fired
    kube_emulator.faults.clear()

    assert fired > 10
    for namespace in namespaces:
        assert [o["metadata"]["name"] for o in kube_emulator.objects("Deployment", namespace)] == [
            "web"
        ]
        assert kube_emulator.objects("Job", namespace) == []
        config_maps = kube_emulator.objects("ConfigMap", namespace)
        assert [c["data"] for c in config_maps] == [{"LOG_LEVEL": "info"}]
    assert target.readiness(stack(namespaces[0], extra=False)).ready
