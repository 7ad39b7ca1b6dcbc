"""The emulator behaves like the API server where the platform relies on it.

Talks to it with the official typed client, as any client would.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from tests.kube_emulator import KubeEmulator

APPLY = "application/apply-patch+yaml"


def _get(emulator: KubeEmulator, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(emulator.url + path) as answer:
        return dict(json.loads(answer.read()))


def _deployment(replicas: int = 1, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }


@pytest.fixture
def core(kube_emulator: KubeEmulator) -> kubernetes.client.CoreV1Api:
    api = kubernetes.client.CoreV1Api(kube_emulator.api_client())
    api.create_namespace({"metadata": {"name": "t1"}})
    return api


@pytest.fixture
def apps(kube_emulator: KubeEmulator) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(kube_emulator.api_client())


def test_discovery_lists_groups_and_resources(kube_emulator: KubeEmulator) -> None:
    groups = {g["name"] for g in _get(kube_emulator, "/apis")["groups"]}
    assert {"apps", "batch", "networking.k8s.io", "policy", "rbac.authorization.k8s.io"} <= groups
    core = {r["name"]: r for r in _get(kube_emulator, "/api/v1")["resources"]}
    assert core["namespaces"]["namespaced"] is False
    assert core["configmaps"]["namespaced"] is True
    apps = {r["name"] for r in _get(kube_emulator, "/apis/apps/v1")["resources"]}
    assert {"deployments", "deployments/status", "statefulsets"} <= apps
    assert _get(kube_emulator, "/version")["major"] == "1"


def test_a_namespaced_object_needs_its_namespace(
    core: kubernetes.client.CoreV1Api,
) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("absent", {"metadata": {"name": "x"}})
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["reason"] == "NotFound"


def test_creating_twice_is_already_exists(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("t1", {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as twice:
        core.create_namespaced_config_map("t1", {"metadata": {"name": "x"}})
    assert twice.value.status == 409
    assert json.loads(twice.value.body)["reason"] == "AlreadyExists"


def test_replace_with_a_stale_resource_version_conflicts(
    core: kubernetes.client.CoreV1Api,
) -> None:
    created = core.create_namespaced_config_map(
        "t1", {"metadata": {"name": "x"}, "data": {"a": "1"}}
    )
    stale = created.metadata.resource_version
    core.patch_namespaced_config_map("x", "t1", {"data": {"a": "2"}})

    body = {"metadata": {"name": "x", "resourceVersion": stale}, "data": {"a": "3"}}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("x", "t1", body)

    assert conflict.value.status == 409
    assert "has been modified" in json.loads(conflict.value.body)["message"]


def test_generation_moves_with_the_spec_only(
    kube_emulator: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    apps: kubernetes.client.AppsV1Api,
) -> None:
    first = apps.patch_namespaced_deployment(
        "web", "t1", _deployment(1), field_manager="me", _content_type=APPLY
    )
    relabelled = apps.patch_namespaced_deployment(
        "web", "t1", _deployment(1, tier="web"), field_manager="me", _content_type=APPLY
    )
    scaled = apps.patch_namespaced_deployment(
        "web", "t1", _deployment(3, tier="web"), field_manager="me", _content_type=APPLY
    )

    assert (first.metadata.generation, relabelled.metadata.generation) == (1, 1)
    assert scaled.metadata.generation == 2
    assert int(relabelled.metadata.resource_version) > int(first.metadata.resource_version)
    assert scaled.status.observed_generation == 2


def test_apply_removes_fields_its_manager_no_longer_sets(
    kube_emulator: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    core.patch_namespaced_config_map(
        "x", "t1", {**config, "data": {"a": "1", "b": "2"}}, field_manager="me", _content_type=APPLY
    )
    core.patch_namespaced_config_map("x", "t1", {"data": {"c": "3"}}, field_manager="someone-else")
    core.patch_namespaced_config_map(
        "x", "t1", {**config, "data": {"a": "1"}}, field_manager="me", _content_type=APPLY
    )

    live = kube_emulator.get("ConfigMap", "x", "t1")
    assert live is not None
    assert live["data"] == {"a": "1", "c": "3"}


def test_status_is_written_through_the_subresource_only(
    kube_emulator: KubeEmulator,
    core: kubernetes.client.CoreV1Api,
    apps: kubernetes.client.AppsV1Api,
) -> None:
    body = {**_deployment(2), "status": {"readyReplicas": 99}}
    created = apps.patch_namespaced_deployment(
        "web", "t1", body, field_manager="me", _content_type=APPLY
    )
    assert created.status.ready_replicas == 2

    apps.patch_namespaced_deployment_status("web", "t1", {"status": {"readyReplicas": 1}})

    live = kube_emulator.get("Deployment", "web", "t1")
    assert live is not None
    assert live["status"]["readyReplicas"] == 1
    assert live["metadata"]["generation"] == 1


def test_an_invalid_object_is_422_with_the_field(
    core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api
) -> None:
    body = _deployment(1)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = ""

    with pytest.raises(ApiException) as invalid:
        apps.patch_namespaced_deployment("web", "t1", body, field_manager="me", _content_type=APPLY)

    status = json.loads(invalid.value.body)
    assert invalid.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image"


def test_field_selector_on_name(core: kubernetes.client.CoreV1Api) -> None:
    for name in ("a", "b"):
        core.create_namespaced_config_map("t1", {"metadata": {"name": name}})

    found = core.list_namespaced_config_map("t1", field_selector="metadata.name=b")
    others = core.list_namespaced_config_map("t1", field_selector="metadata.name!=b")

    assert [c.metadata.name for c in found.items] == ["b"]
    assert [c.metadata.name for c in others.items] == ["a"]


def test_a_terminating_namespace_refuses_new_objects_then_disappears(
    kube_emulator: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("t1", {"metadata": {"name": "x"}})
    kube_emulator.namespace_delete_delay = 60

    core.delete_namespace("t1")

    assert core.read_namespace("t1").status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map("t1", {"metadata": {"name": "y"}})
    assert refused.value.status == 403
    kube_emulator.finish_terminating()
    assert kube_emulator.get("Namespace", "t1") is None
    assert kube_emulator.objects("ConfigMap", "t1") == []


def test_faults_repeat_for_the_same_seed() -> None:
    def run(seed: int) -> list[int]:
        with KubeEmulator(seed=seed) as emulator:
            emulator.faults.add(500, path="/version", probability=0.5)
            codes = []
            for _ in range(20):
                try:
                    urllib.request.urlopen(emulator.url + "/version").close()
                    codes.append(200)
                except urllib.error.HTTPError as error:
                    codes.append(error.code)
            return codes

    first = run(7)
    assert first == run(7)
    assert 200 in first
    assert 500 in first


def test_writes_are_counted_and_reads_are_not(
    kube_emulator: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    kube_emulator.writes.reset()
    core.create_namespaced_config_map("t1", {"metadata": {"name": "x"}})
    core.read_namespaced_config_map("x", "t1")
    core.list_namespaced_config_map("t1")
    core.delete_namespaced_config_map("x", "t1")

    assert kube_emulator.writes.total == 2
    assert dict(kube_emulator.writes.by_method) == {"POST": 1, "DELETE": 1}
    kube_emulator.reset()
    assert kube_emulator.writes.total == 0
    assert kube_emulator.get("Namespace", "t1") is None
