"""The Kubernetes port on the real cluster, through the real ``kubernetes`` client.

Writes go through the fault proxy (``kube``), which counts them and injects the faults the
retry tests need; what the tests read back they read from the apiserver directly
(``cluster``). Every test works in a namespace of its own.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from controlplane.errors import Conflict, InvalidInput, Unavailable
from controlplane.kube import (
    ApplyConflict,
    KubeClient,
    ObjectRejected,
    RetryPolicy,
    TargetUnavailable,
    UnknownKind,
    apply_wave,
)
from tests.cluster.fixtures import Cluster
from tests.cluster.proxy import FaultProxy
from tests.kube.conftest import FAST_RETRY
from tests.kube.stacks import INSTANCE_LABEL, ids, stack

DEPLOYMENT = "apps/v1/Deployment/web"
#: Every namespace gets this ConfigMap from the apiserver's root-CA publisher.
ROOT_CA = "kube-root-ca.crt"
#: A node label no node has: pods that select it stay Pending.
NO_NODE = {"city-platform.be/test-no-such-node": "true"}


def _config_maps(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [
        c
        for c in cluster.objects("ConfigMap", namespace, api_version="v1")
        if c["metadata"]["name"] != ROOT_CA
    ]


def _create_config_map(
    cluster: Cluster, namespace: str, name: str, labels: dict[str, str] | None = None
) -> None:
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    metadata = {"name": name, "namespace": namespace, "labels": labels or {}}
    core.create_namespaced_config_map(namespace, {"metadata": metadata})


def _applied_by_us(live: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in live["metadata"]["managedFields"] if m["manager"] == "city-platform"]


def test_apply_creates_every_object_in_apply_order(
    kube: FaultProxy, cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)

    result = target.apply(objects)

    assert set(result.applied) == ids(objects)
    assert result.writes == len(objects)
    kinds_written = [kind for method, _path, kind in kube.writes.log if method == "PATCH"]
    assert kinds_written[0] == "Namespace"
    waves = [apply_wave(str(kind)) for kind in kinds_written]
    assert waves == sorted(waves)
    # What exposes the workloads is written before them (their pods see the Service).
    assert kinds_written.index("Service") < kinds_written.index("Deployment")
    assert kinds_written.index("ConfigMap") < kinds_written.index("Deployment")
    assert [c["metadata"]["name"] for c in _config_maps(cluster, namespace)] == ["web-config"]
    live = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
    assert live is not None
    # The platform applied the object; the controller only writes its status.
    owners = {
        (m["manager"], m["operation"])
        for m in live["metadata"]["managedFields"]
        if m.get("subresource") != "status"
    }
    assert owners == {("city-platform", "Apply")}


def test_apply_with_nothing_selected_makes_zero_writes(
    kube: FaultProxy, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    target.apply(objects)
    kube.writes.reset()

    result = target.apply(objects, only=set())

    assert kube.writes.total == 0
    assert result.applied == []
    assert set(result.skipped) == ids(objects)


def test_apply_only_writes_the_named_objects(
    kube: FaultProxy, cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    target.apply(objects)
    kube.writes.reset()

    result = target.apply(stack(namespace, replicas=3), only={DEPLOYMENT})

    assert result.applied == [DEPLOYMENT]
    assert kube.writes.total == 1
    assert dict(kube.writes.by_kind) == {"Deployment": 1}
    live = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
    assert live is not None
    assert live["spec"]["replicas"] == 3


def test_reapplying_identical_objects_changes_nothing_on_the_server(
    target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    first = target.apply(objects)
    second = target.apply(objects)

    for oid, live in first.live.items():
        if oid.split("/")[-2] in ("Deployment", "Job", "ResourceQuota", "PodDisruptionBudget"):
            # Their controllers write status meanwhile (a new resourceVersion); the platform's
            # managed-fields entry (its time included) shows the re-apply changed nothing.
            assert _applied_by_us(second.live[oid]) == _applied_by_us(live), oid
        else:
            assert (
                second.live[oid]["metadata"]["resourceVersion"]
                == live["metadata"]["resourceVersion"]
            ), oid


def test_field_owned_by_another_manager_conflicts_unless_forced(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    target.apply(stack(namespace))
    apps = kubernetes.client.AppsV1Api(cluster.api_client)
    scale = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    scale["spec"] = {"replicas": 5}

    with pytest.raises(ApiException) as refused:
        apps.patch_namespaced_deployment(
            "web",
            namespace,
            scale,
            field_manager="ops-team",
            _content_type="application/apply-patch+yaml",
        )
    assert refused.value.status == 409
    assert "city-platform" in refused.value.body
    assert ".spec.replicas" in refused.value.body

    apps.patch_namespaced_deployment(
        "web",
        namespace,
        scale,
        field_manager="ops-team",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    taken = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
    assert taken is not None
    assert taken["spec"]["replicas"] == 5

    # The platform forces its own fields back on the next apply.
    target.apply(stack(namespace), only={DEPLOYMENT})
    back = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
    assert back is not None
    assert back["spec"]["replicas"] == 2
    owners = {
        m["manager"]: m["fieldsV1"].get("f:spec", {})
        for m in back["metadata"]["managedFields"]
        if m.get("subresource") != "status"
    }
    assert "f:replicas" in owners["city-platform"]
    assert "f:replicas" not in owners.get("ops-team", {})


def test_a_field_manager_conflict_is_raised_as_apply_conflict(
    kube: FaultProxy, target: KubeClient, namespace: str
) -> None:
    target.apply(stack(namespace))
    kube.faults.add(
        409,
        method="PATCH",
        message='Apply failed with 1 conflict: conflict with "x": .spec.replicas',
    )

    with pytest.raises(ApplyConflict) as raised:
        target.apply(stack(namespace), only={DEPLOYMENT})

    assert isinstance(raised.value, Conflict)
    assert kube.writes.log[-1][0] == "PATCH"
    assert kube.faults.fired == 1  # not retried


def test_a_quota_refusal_names_the_quota_not_rbac(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    """A 403 from a ResourceQuota is about the namespace's limits: the hint says so."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "small", "namespace": namespace},
        "spec": {"hard": {"requests.storage": "1Gi"}},
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    target.apply([quota])
    cluster.wait_for(
        "the quota to be counted",
        lambda: (
            (cluster.get("ResourceQuota", "small", namespace, api_version="v1") or {})
            .get("status", {})
            .get("hard")
        ),
        timeout=30,
    )
    with pytest.raises(Unavailable) as refused:
        target.apply([claim])
    assert "exceeded quota" in refused.value.detail
    assert refused.value.hint is not None
    assert "ResourceQuota" in refused.value.hint
    assert "RBAC" not in refused.value.hint


def test_label_selector_lists(cluster: Cluster, target: KubeClient, namespace: str) -> None:
    for name, labels in {
        "a": {"tier": "web", "env": "prod"},
        "b": {"tier": "db", "env": "prod"},
        "c": {"tier": "cache"},
    }.items():
        _create_config_map(cluster, namespace, name, labels)

    def names(selector: str) -> list[str]:
        items = target.list_objects("v1", "ConfigMap", namespace, label_selector=selector)
        return sorted(i["metadata"]["name"] for i in items)

    # The namespace's root CA ConfigMap has no labels: it matches the negative selectors.
    assert names("tier=web") == ["a"]
    assert names("tier==db") == ["b"]
    assert names("tier!=web") == ["b", "c", ROOT_CA]
    assert names("tier in (web,cache)") == ["a", "c"]
    assert names("tier notin (web, cache)") == ["b", ROOT_CA]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c", ROOT_CA]
    assert names("env=prod,tier!=db") == ["a"]
    assert names("") == ["a", "b", "c", ROOT_CA]


def test_prune_removes_exactly_the_stale_objects(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    old = stack(namespace, extra=True)
    target.apply(old)
    # Another instance in the same namespace, an unlabelled object, and a stray of ours that
    # the inventory does not know about (applied by the platform's field manager).
    _create_config_map(cluster, namespace, "other", {INSTANCE_LABEL: "inst-2"})
    _create_config_map(cluster, namespace, "manual")
    stray_meta = {"name": "stray", "namespace": namespace, "labels": {INSTANCE_LABEL: "inst-1"}}
    target.apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": stray_meta}])
    new = stack(namespace, extra=False)

    deleted = target.prune(
        namespace, keep=ids(new), inventory=sorted(ids(old)), instance_id="inst-1"
    )

    assert set(deleted) == {
        "batch/v1/Job/migrate",
        "policy/v1/PodDisruptionBudget/web",
        "v1/ConfigMap/stray",
    }
    # Reverse apply order: what exposes workloads goes before workloads and configuration.
    assert deleted.index("policy/v1/PodDisruptionBudget/web") < deleted.index(
        "batch/v1/Job/migrate"
    )
    assert sorted(c["metadata"]["name"] for c in _config_maps(cluster, namespace)) == [
        "manual",
        "other",
        "web-config",
    ]
    assert cluster.get("Job", "migrate", namespace, api_version="batch/v1") is None
    assert cluster.namespace_exists(namespace)
    # The Deployment's ReplicaSets and Pods carry the instance label (copied from the pod
    # template) but the platform did not apply them: they stay.
    assert cluster.get("Deployment", "web", namespace, api_version="apps/v1") is not None
    # Pruning again finds nothing: deletions of missing objects are not reported.
    assert (
        target.prune(namespace, keep=ids(new), inventory=sorted(ids(old)), instance_id="inst-1")
        == []
    )


def test_prune_leaves_what_a_controller_made_with_the_instance_label(
    kube: FaultProxy, cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    # A StatefulSet's controller copies the labels of its volumeClaimTemplates (which carry
    # the instance label) onto the claims it creates: the database volume. It is not in the
    # inventory and not in the stack, and it must never be pruned.
    target.apply(stack(namespace))
    controller = KubeClient(kube.api_client(), field_manager="kube-controller-manager")
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "data-postgres-0",
            "namespace": namespace,
            "labels": {INSTANCE_LABEL: "inst-1"},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    controller.apply([claim])
    controller.close()
    # A CronJob's Job, created by its controller (an Update, not the platform's Apply).
    kubernetes.client.BatchV1Api(cluster.api_client).create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "cleanup-2901", "labels": {INSTANCE_LABEL: "inst-1"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox:1"}],
                    }
                }
            },
        },
    )

    deleted = target.prune(
        namespace,
        keep=ids(stack(namespace)),
        inventory=sorted(ids(stack(namespace))),
        instance_id="inst-1",
    )

    assert deleted == []
    assert cluster.get("PersistentVolumeClaim", "data-postgres-0", namespace, api_version="v1")
    assert cluster.get("Job", "cleanup-2901", namespace, api_version="batch/v1") is not None


def test_prune_does_not_treat_an_api_version_change_as_stale(
    target: KubeClient, namespace: str
) -> None:
    target.apply(stack(namespace))
    keep = {i.replace("policy/v1/", "policy/v1beta1/") for i in ids(stack(namespace))}

    deleted = target.prune(
        namespace, keep=keep, inventory=sorted(ids(stack(namespace))), instance_id="inst-1"
    )

    assert deleted == []


def _wait_readiness(
    cluster: Cluster, target: KubeClient, objects: list[dict[str, Any]], what: str,
    check: Callable[[Any], bool],
) -> Any:  # fmt: skip
    def probe() -> Any:
        verdict = target.readiness(objects)
        return verdict if check(verdict) else None

    return cluster.wait_for(what, probe, timeout=90, interval=0.5)


def test_a_stack_becomes_ready_through_the_real_controllers(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    target.apply(objects)

    verdict = _wait_readiness(cluster, target, objects, "the stack to be Ready", lambda v: v.ready)

    assert verdict.objects[DEPLOYMENT].message == "2 of 2 replicas ready"
    assert verdict.objects["batch/v1/Job/migrate"].message == "completed"


def test_a_deployment_whose_pods_cannot_run_is_not_ready_then_failed_at_its_deadline(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    # No node has the selected label: the pods stay Pending. Without a short progress
    # deadline that is "not ready yet"; past its deadline the controller gives up (failed).
    waiting = stack(namespace, extra=False)
    web = next(o for o in waiting if o["kind"] == "Deployment")
    web["spec"]["template"]["spec"]["nodeSelector"] = NO_NODE
    stuck = {**web, "metadata": {**web["metadata"], "name": "stuck"}}
    stuck["spec"] = {**web["spec"], "progressDeadlineSeconds": 1}
    target.apply([*waiting, stuck])

    # The controller observes the Deployment, creates its ReplicaSet, then counts the pods.
    expected = [f"{DEPLOYMENT}: 0 of 2 replicas available"]
    verdict = _wait_readiness(
        cluster, target, waiting, "web's pods to be counted", lambda v: v.messages == expected
    )
    assert not verdict.ready
    assert not verdict.failed

    failed = _wait_readiness(
        cluster, target, [stuck], "ProgressDeadlineExceeded", lambda v: v.failed
    )
    message = failed.objects["apps/v1/Deployment/stuck"].message
    assert message.startswith("rollout failed:")
    assert "has timed out progressing" in message


def test_a_job_that_fails_makes_the_stack_failed(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    job = next(o for o in objects if o["kind"] == "Job")
    # Its pod can never be scheduled, and the Job may run one second: DeadlineExceeded.
    job["spec"]["activeDeadlineSeconds"] = 1
    job["spec"]["template"]["spec"]["nodeSelector"] = NO_NODE
    target.apply(objects)

    verdict = _wait_readiness(cluster, target, objects, "the Job to fail", lambda v: v.failed)

    assert not verdict.ready
    assert verdict.objects["batch/v1/Job/migrate"].message.startswith("job failed:")


def test_readiness_of_a_missing_workload_says_to_apply_it(target: KubeClient) -> None:
    verdict = target.readiness(stack("nowhere-city-platform-test"))

    assert not verdict.ready
    assert "does not exist" in verdict.objects[DEPLOYMENT].message


def test_delete_namespace_waits_until_it_is_gone(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    target.apply(stack(namespace))

    target.delete_namespace(namespace, wait=True, timeout=120)

    assert not cluster.namespace_exists(namespace)
    assert cluster.objects("Deployment", namespace, api_version="apps/v1") == []
    assert cluster.objects("ConfigMap", namespace, api_version="v1") == []
    target.delete_namespace(namespace)  # already gone: nothing to do


def test_delete_namespace_gives_up_after_the_timeout(
    cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    # A finalizer nobody removes keeps the namespace Terminating.
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    held = {"name": "held", "finalizers": ["city-platform.be/test-hold"]}
    core.create_namespaced_config_map(namespace, {"metadata": held})
    try:
        with pytest.raises(TargetUnavailable, match="still exists") as raised:
            target.delete_namespace(namespace, timeout=1)

        assert "Terminating" in raised.value.detail
        assert "finalizers" in (raised.value.hint or "")
    finally:
        core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})


def test_retries_get_through_transient_faults(
    kube: FaultProxy, cluster: Cluster, target: KubeClient, namespace: str
) -> None:
    kube.faults.add(429, method="PATCH", count=2, retry_after=0)
    kube.faults.add(500, method="PATCH", count=1)
    kube.faults.add(503, method="PATCH", count=1)
    kube.faults.add(409, method="PATCH", count=1)  # optimistic concurrency
    kube.faults.add(500, method="GET", count=1)  # discovery fails once too
    objects = stack(namespace)

    result = target.apply(objects)

    assert set(result.applied) == ids(objects)
    assert kube.faults.fired == 6
    assert result.attempts == result.writes + 5
    assert len(cluster.objects("Deployment", namespace, api_version="apps/v1")) == 1


def test_a_slow_answer_times_out_and_is_retried(kube: FaultProxy, namespace: str) -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.001, request_timeout=0.3, seed=1)
    target = KubeClient(kube.api_client(), retry=policy)
    kube.faults.add(delay=1.0, method="PATCH", count=1)

    result = target.apply(stack(namespace)[5:6])

    assert result.applied == [f"v1/Namespace/{namespace}"]
    assert result.attempts == 2
    target.close()


def test_gives_up_with_target_unavailable_after_the_budget(
    kube: FaultProxy, target: KubeClient, namespace: str
) -> None:
    kube.faults.add(503, method="PATCH")

    with pytest.raises(TargetUnavailable) as raised:
        target.apply(stack(namespace))

    assert isinstance(raised.value, Unavailable)
    assert isinstance(raised.value.__cause__, ApiException)
    assert f"v1/Namespace/{namespace}" in raised.value.detail
    assert "503" in raised.value.detail
    assert kube.writes.total == FAST_RETRY.attempts


def test_an_unreachable_cluster_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{port}"
    config.retries = 0
    policy = RetryPolicy(attempts=2, base_delay=0.001, request_timeout=1.0, seed=1)
    target = KubeClient(kubernetes.client.ApiClient(config), retry=policy)

    with pytest.raises(TargetUnavailable, match="attempt"):
        target.apply(stack("t1"))


def test_an_invalid_object_is_rejected_naming_the_field(
    kube: FaultProxy, target: KubeClient, namespace: str
) -> None:
    objects = stack(namespace)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["selector"]["matchLabels"] = {"app": "something-else"}

    with pytest.raises(ObjectRejected) as raised:
        target.apply([deployment])

    assert isinstance(raised.value, InvalidInput)
    assert "spec.template.metadata.labels" in str(raised.value)
    assert raised.value.errors[0].location == f"{DEPLOYMENT}: spec.template.metadata.labels"
    assert kube.writes.total == 1  # a 422 is not retried


def test_secret_values_never_reach_messages(
    kube: FaultProxy, target: KubeClient, namespace: str
) -> None:
    secret = next(o for o in stack(namespace) if o["kind"] == "Secret")
    kube.faults.add(
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


def test_a_secret_the_apiserver_refuses_is_reported_without_its_values(
    target: KubeClient, namespace: str
) -> None:
    # The real apiserver's own refusal: a data key that is not a valid key name.
    secret = next(o for o in stack(namespace) if o["kind"] == "Secret")
    secret["stringData"] = {"pass word": "s3cr3t-value"}

    with pytest.raises(ObjectRejected) as raised:
        target.apply([secret])

    assert "pass word" in str(raised.value)
    assert "s3cr3t-value" not in str(raised.value)
    assert "s3cr3t-value" not in str(raised.value.__cause__)


def test_a_namespaced_object_without_namespace_is_rejected(target: KubeClient) -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}

    with pytest.raises(ObjectRejected, match=r"no metadata\.namespace"):
        target.apply([config_map])


def test_applying_into_a_missing_namespace_is_rejected(
    target: KubeClient, fresh_namespace: Callable[[], str]
) -> None:
    absent = fresh_namespace()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": absent},
    }

    with pytest.raises(ObjectRejected, match=f"namespace '{absent}' does not exist"):
        target.apply([config_map])


def test_a_kind_the_cluster_does_not_serve_is_reported(target: KubeClient) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

    with pytest.raises(UnknownKind, match="Widget"):
        target.apply([widget])


def test_observe_returns_live_objects_and_none_for_missing(
    target: KubeClient, namespace: str
) -> None:
    target.apply(stack(namespace))

    seen = target.observe(
        namespace, [DEPLOYMENT, "v1/ConfigMap/absent", f"v1/Namespace/{namespace}"]
    )

    live = seen[DEPLOYMENT]
    assert live is not None
    assert live["spec"]["replicas"] == 2
    assert seen["v1/ConfigMap/absent"] is None
    assert seen[f"v1/Namespace/{namespace}"] is not None


def test_from_kubeconfig_talks_to_the_cluster_in_the_file(cluster: Cluster, namespace: str) -> None:
    # The cluster's own kubeconfig: TLS with the CA and a client certificate.
    target = KubeClient.from_kubeconfig(str(cluster.kubeconfig), retry=FAST_RETRY)

    target.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "hello", "namespace": namespace},
            }
        ]
    )

    assert cluster.get("ConfigMap", "hello", namespace, api_version="v1") is not None
    target.close()


def test_twenty_percent_faults_still_converge(
    kube: FaultProxy,
    cluster: Cluster,
    target: KubeClient,
    fresh_namespace: Callable[[], str],
) -> None:
    # About one request in five fails with one of the retryable statuses.
    for status in (429, 500, 503, 409):
        kube.faults.add(status, probability=0.055)
    namespaces = [fresh_namespace() for _ in range(6)]
    for namespace in namespaces:
        for _round in range(2):
            target.apply(stack(namespace, instance_id=namespace))
        target.prune(
            namespace,
            keep=ids(stack(namespace, extra=False)),
            inventory=sorted(ids(stack(namespace))),
            instance_id=namespace,
        )
    fired = kube.faults.fired
    kube.faults.clear()

    assert fired > 10
    for namespace in namespaces:
        deployments = cluster.objects("Deployment", namespace, api_version="apps/v1")
        assert [d["metadata"]["name"] for d in deployments] == ["web"]
        assert cluster.objects("Job", namespace, api_version="batch/v1") == []
        assert [c["data"] for c in _config_maps(cluster, namespace)] == [{"LOG_LEVEL": "info"}]
    settled = stack(namespaces[0], extra=False)
    _wait_readiness(cluster, target, settled, "the first stack to be Ready", lambda v: v.ready)
