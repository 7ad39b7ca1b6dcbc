"""The port's watch cache and its wave-parallel apply, on the real cluster through the proxy.

- Once a kind's watch has synced, reads are answered from the cache (no request), and
  another manager's change reaches the cache through the watch.
- A watch the proxy answers with 410 Gone is replaced by a fresh LIST; one the proxy keeps
  failing leaves the kind unsynced, and reads go to the apiserver meanwhile (never a stale
  answer from the cache); once the faults stop, the watch resumes and serves reads again.
- Secret values never enter the cache; ``read_secret`` still reads them; managedFields keep
  only manager and operation.
- Apply writes one wave at a time (objects of one wave at once; what exposes workloads goes
  with the configuration, before them): the result lists the objects in write order, and
  the first error stops the apply before the next wave.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.kube import INSTANCE_LABEL, KubeClient, ObjectRejected, RetryPolicy
from controlplane.kube.objects import in_write_order, object_id
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from tests.cluster.fixtures import Cluster
from tests.cluster.proxy import FaultProxy

FAST_RETRY = RetryPolicy(
    attempts=4, base_delay=0.001, max_delay=0.01, deadline=10.0, request_timeout=10.0, seed=1
)
#: The collection path the ConfigMap watch (cluster-wide) lists and watches.
CONFIGMAPS = r"^/api/v1/configmaps$"


@pytest.fixture
def port(kube: FaultProxy) -> Iterator[KubeClient]:
    """A port whose watches end after 1 s (so each test sees them resumed), via the proxy."""
    target = KubeClient(kube.api_client(), retry=FAST_RETRY, watch_seconds=1)
    yield target
    target.close()


def configmap(namespace: str, name: str, value: str, instance: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {INSTANCE_LABEL: instance}},
        "data": {"value": value},
    }


def watched(port: KubeClient, namespace: str, obj: dict[str, Any]) -> str:
    """Apply ``obj``, start its kind's watch, wait until synced; its id."""
    port.apply([obj])
    oid = object_id(obj)
    port.read(namespace, oid)
    assert port.wait_synced(timeout=30), port.watched()
    return oid


def patch_value(cluster: Cluster, namespace: str, name: str, value: str) -> int:
    cluster.kubectl(
        "--namespace", namespace, "patch", f"configmap/{name}", "--type=merge",
        "-p", f'{{"data":{{"value":"{value}"}}}}',
    )  # fmt: skip
    live = cluster.get("ConfigMap", name, namespace, api_version="v1")
    assert live is not None
    return int(live["metadata"]["resourceVersion"])


def held(port: KubeClient, namespace: str, oid: str) -> int:
    """The resourceVersion the cache holds for ``oid`` (0: none)."""
    cached = port.cached(namespace, oid)
    return int(cached["metadata"]["resourceVersion"]) if cached else 0


def test_a_synced_watch_answers_reads_and_brings_other_managers_changes(
    cluster: Cluster, kube: FaultProxy, port: KubeClient, namespace: str
) -> None:
    name = f"cm-{secrets.token_hex(3)}"
    oid = watched(port, namespace, configmap(namespace, name, "one", f"i-{name}"))

    rv = patch_value(cluster, namespace, name, "two")
    cluster.wait_for(
        "the watch to bring kubectl's change", lambda: held(port, namespace, oid) >= rv
    )
    kube.requests.reset()
    live = port.read(namespace, oid)

    assert live is not None
    assert live["data"] == {"value": "two"}
    assert kube.requests.total == 0, kube.requests.log


def test_a_watch_answered_410_gone_lists_again_and_keeps_serving(
    cluster: Cluster, kube: FaultProxy, port: KubeClient, namespace: str
) -> None:
    name = f"cm-{secrets.token_hex(3)}"
    oid = watched(port, namespace, configmap(namespace, name, "one", f"i-{name}"))
    (cache,) = port.watched()
    assert cache.lists == 1

    gone = kube.faults.add(410, method="GET", path=CONFIGMAPS, count=1)
    cluster.wait_for("the resumed watch to meet 410 Gone", lambda: gone.fired == 1)
    cluster.wait_for("a fresh LIST", lambda: cache.lists == 2 and cache.synced)

    rv = patch_value(cluster, namespace, name, "after-relist")
    cluster.wait_for(
        "the new watch to bring the change",
        lambda: (port.cached(namespace, oid) or {}).get("data") == {"value": "after-relist"},
    )
    assert held(port, namespace, oid) >= rv


def test_a_broken_watch_falls_back_to_direct_reads_then_recovers(
    cluster: Cluster, kube: FaultProxy, port: KubeClient, namespace: str
) -> None:
    name = f"cm-{secrets.token_hex(3)}"
    oid = watched(port, namespace, configmap(namespace, name, "one", f"i-{name}"))
    object_path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"

    kube.faults.add(503, method="GET", path=CONFIGMAPS, retry_after=0)
    cluster.wait_for("the watch to break", lambda: not port.watch_synced("v1", "ConfigMap"))
    patch_value(cluster, namespace, name, "while-broken")
    kube.requests.reset()
    live = port.read(namespace, oid)

    assert live is not None
    assert live["data"] == {"value": "while-broken"}
    assert kube.requests.by_path[object_path] == 1, kube.requests.log

    kube.faults.clear()
    assert port.wait_synced(timeout=30)
    cluster.wait_for(
        "the resumed watch to bring the change made while it was broken",
        lambda: (port.cached(namespace, oid) or {}).get("data") == {"value": "while-broken"},
    )
    kube.requests.reset()
    assert port.read(namespace, oid) is not None
    assert kube.requests.total == 0, kube.requests.log


def test_secret_values_stay_out_of_the_cache(port: KubeClient, namespace: str) -> None:
    name = f"s-{secrets.token_hex(3)}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {INSTANCE_LABEL: name}},
        "data": {"password": base64.b64encode(b"hunter2-not-cached").decode()},
    }
    oid = watched(port, namespace, secret)

    held = port.cached(namespace, oid)

    assert held is not None
    assert "data" not in held
    assert "stringData" not in held
    assert "hunter2" not in repr(held)
    assert all(
        set(entry) <= {"manager", "operation"} for entry in held["metadata"]["managedFields"]
    )
    assert KubernetesTarget(port).read_secret(namespace, name) == {"password": "hunter2-not-cached"}


def test_apply_writes_wave_by_wave_and_stops_at_the_first_error(
    kube: FaultProxy, port: KubeClient, namespace: str
) -> None:
    instance = f"i-{secrets.token_hex(3)}"
    labels = {INSTANCE_LABEL: instance}
    maps = [configmap(namespace, f"cm-{i}", str(i), instance) for i in range(6)]
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": namespace, "labels": labels},
        "spec": {"hard": {"pods": "20"}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace, "labels": labels},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": namespace, "labels": labels},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
                }
            }
        },
    }
    objects = [job, service, *maps, quota]

    result = port.apply(objects)

    # Quota, then the ConfigMaps with the Service, then the Job; apply order within a wave.
    assert result.applied == [object_id(o) for o in [quota, *maps, service, job]]
    assert result.applied == [object_id(o) for o in in_write_order(objects)]
    assert result.writes == 9
    kinds = [kind for _method, _path, kind in kube.writes.log]
    assert kinds.index("ResourceQuota") < min(i for i, k in enumerate(kinds) if k == "ConfigMap")
    assert max(kinds.index("Service"), *(i for i, k in enumerate(kinds) if k == "ConfigMap")) < (
        kinds.index("Job")
    )

    # A ConfigMap the apiserver refuses stops the apply before the workloads' wave; the
    # rest of its own wave (the Service among them) was written at the same time.
    kube.writes.reset()
    bad = configmap(namespace, "Not_A_Valid_Name", "x", instance)
    with pytest.raises(ObjectRejected):
        port.apply([job, service, *maps, bad])
    assert sorted(kind for _m, _p, kind in kube.writes.log) == ["ConfigMap"] * 7 + ["Service"]


def test_prune_with_synced_watches_asks_the_apiserver_only_to_delete(
    kube: FaultProxy, port: KubeClient, namespace: str
) -> None:
    """Every prunable kind is searched in the cache, those the fleet has none of too.

    No catalogue service renders a HorizontalPodAutoscaler, so that kind's cache is synced
    and empty: an empty cache must still answer (it once counted as no cache, and every
    prune listed such kinds directly).
    """
    instance = f"i-{secrets.token_hex(3)}"
    kept = watched(port, namespace, configmap(namespace, "kept", "1", instance))
    stale = object_id(configmap(namespace, "stale", "2", instance))
    port.apply([configmap(namespace, "stale", "2", instance)])
    port.prune(namespace, keep={kept, stale}, inventory=[], instance_id=instance)
    assert port.wait_synced(timeout=30), port.watched()
    assert port.watch_synced("autoscaling/v2", "HorizontalPodAutoscaler")
    kube.requests.reset()

    deleted = port.prune(namespace, keep={kept}, inventory=[], instance_id=instance)

    assert deleted == [stale]
    # The only other requests are the watches resuming (cluster-wide paths, every second here).
    in_namespace = [(m, p) for m, p, _kind in kube.requests.log if f"/{namespace}/" in p]
    assert in_namespace == [("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/stale")]
