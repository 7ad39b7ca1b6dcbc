"""Drift on the real cluster: what the reconciler's resync finds, and how it repairs it.

One Keycloak instance (the newest version, plan small) is created through the reconciler
and the worker, with the target's port behind the fault proxy so that every write the
platform sends is counted. Then:

- a resync of the Ready instance finds no drift — what the apiserver adds by defaulting is
  not a change — and sends zero writes;
- another field manager changes what the platform owns (``kubectl scale``, ``kubectl set
  env``, ``kubectl annotate``, ``kubectl patch`` of a ConfigMap value) or deletes an object
  (``kubectl delete``): the next resync finds exactly that object, rewrites only it, the live
  object is back to what the platform renders, and the resync after it writes nothing.

Drift is read from the port's watch cache (``controlplane.kube.cache``): each test waits
until the watch has brought the change (the cache holds the live resourceVersion, or no
longer holds a deleted object), so the resync that follows finds it without a single read;
a resync of an unchanged instance then costs no apiserver request at all.

The instance is shared by the module's tests (one settling time, not six); each test leaves
it repaired and Ready.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.provisioning.models import Phase
from controlplane.provisioning.reconciling import Outcome
from controlplane.provisioning.targets.kubernetes import DIGEST_ANNOTATION
from tests.cluster.fixtures import Cluster
from tests.cluster.platform import ClusterPlatform, describe, pod_spec
from tests.cluster.proxy import FaultProxy

SERVICE, VERSION = "keycloak", "26.0.7"


@dataclass
class Instance:
    cp: ClusterPlatform
    proxy: FaultProxy
    cluster: Cluster
    id: uuid.UUID
    namespace: str

    def path(self, api_version: str, plural: str, name: str) -> str:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        return f"{base}/namespaces/{self.namespace}/{plural}/{name}"

    def live(self, kind: str, name: str, api_version: str) -> dict[str, Any]:
        obj = self.cluster.get(kind, name, self.namespace, api_version=api_version)
        assert obj is not None, f"{kind} {name} does not exist"
        return obj

    def kubectl(self, *args: str) -> None:
        self.cluster.kubectl("--namespace", self.namespace, *args)

    def watch_sees(self, kind: str, name: str, api_version: str) -> None:
        """Wait until the port's watch cache holds what the apiserver holds now."""
        port = self.cp.port
        oid = f"{api_version}/{kind}/{name}"
        live = self.cluster.get(kind, name, self.namespace, api_version=api_version)
        want = None if live is None else int(live["metadata"]["resourceVersion"])

        def seen() -> bool:
            held = port.cached(self.namespace, oid)
            if want is None:
                return held is None and port.watch_synced(api_version, kind)
            return held is not None and int(held["metadata"]["resourceVersion"]) >= want

        self.cluster.wait_for(f"the watch of {kind} to bring {name}'s change", seen, timeout=30)

    def resync_repairs(self, path: str) -> None:
        """The next resync rewrites exactly ``path``; the one after it writes nothing."""
        self.proxy.writes.reset()
        result = self.cp.resync()
        assert result.outcome == Outcome.REPAIRED, result
        assert dict(self.proxy.writes.by_path) == {path: 1}, self.proxy.writes.log
        self.cp.converge(self.id, "the instance after the repair")
        self.proxy.writes.reset()
        again = self.cp.resync()
        assert again.outcome == Outcome.UNCHANGED, again
        assert self.proxy.writes.total == 0, self.proxy.writes.log


@pytest.fixture(scope="module")
def instance(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    with FaultProxy(cluster.kubeconfig) as proxy:
        cp = ClusterPlatform(Path(tmp_path_factory.mktemp("drift")), proxy.api_client())
        p = cp.platform
        slug = f"dr{secrets.token_hex(2)}"
        iid = p.create(p.tenant(slug, "44021"), SERVICE, service=SERVICE, version=VERSION)
        try:
            ready = cp.converge(iid, f"{SERVICE} {VERSION}: create")
            assert ready.phase == Phase.READY, describe(ready)
            yield Instance(cp, proxy, cluster, iid, f"{slug}-{SERVICE}")
            p.delete(iid)
            cp.converge(iid, f"{SERVICE}: delete")
        finally:
            cp.close()


def test_a_resync_of_a_ready_instance_finds_no_drift_and_writes_nothing(
    instance: Instance,
) -> None:
    instance.proxy.writes.reset()
    result = instance.cp.resync()
    assert result.outcome == Outcome.UNCHANGED, result
    assert result.written == 0
    assert instance.proxy.writes.total == 0, instance.proxy.writes.log
    assert instance.cp.platform.get(instance.id).phase == Phase.READY


def test_an_unchanged_resync_is_answered_from_the_watch_cache(instance: Instance) -> None:
    """Once the watches have synced, a resync of an unchanged instance (drift, owner,
    readiness) costs at most 2 apiserver requests of any method, and writes nothing."""
    assert instance.cp.resync().outcome == Outcome.UNCHANGED  # starts the watches it needs
    assert instance.cp.port.wait_synced(timeout=30), instance.cp.port.watched()

    instance.proxy.requests.reset()
    instance.proxy.writes.reset()
    result = instance.cp.resync()

    assert result.outcome == Outcome.UNCHANGED, result
    assert instance.proxy.requests.total <= 2, instance.proxy.requests.log
    assert instance.proxy.writes.total == 0


def test_kubectl_scale_by_another_manager_is_repaired(instance: Instance) -> None:
    instance.kubectl("scale", "deployment/keycloak", "--replicas=3")
    assert instance.live("Deployment", "keycloak", "apps/v1")["spec"]["replicas"] == 3
    instance.watch_sees("Deployment", "keycloak", "apps/v1")

    instance.resync_repairs(instance.path("apps/v1", "deployments", "keycloak"))

    assert instance.live("Deployment", "keycloak", "apps/v1")["spec"]["replicas"] == 1


def test_kubectl_set_env_of_an_owned_variable_is_repaired(instance: Instance) -> None:
    def pgdata() -> str:
        postgres = instance.live("StatefulSet", "postgres", "apps/v1")
        (container,) = pod_spec(postgres)["containers"]
        return next(e["value"] for e in container["env"] if e["name"] == "PGDATA")

    rendered = pgdata()
    instance.kubectl("set", "env", "statefulset/postgres", "PGDATA=/tmp/elsewhere")
    assert pgdata() == "/tmp/elsewhere"
    instance.watch_sees("StatefulSet", "postgres", "apps/v1")

    instance.resync_repairs(instance.path("apps/v1", "statefulsets", "postgres"))

    assert pgdata() == rendered


def test_kubectl_annotate_of_an_owned_annotation_is_repaired(instance: Instance) -> None:
    key = "nginx.ingress.kubernetes.io/proxy-body-size"

    def body_size() -> str:
        ingress = instance.live("Ingress", "keycloak", "networking.k8s.io/v1")
        return str(ingress["metadata"]["annotations"][key])

    rendered = body_size()
    instance.kubectl("annotate", "--overwrite", "ingress/keycloak", f"{key}=500m")
    assert body_size() == "500m"
    instance.watch_sees("Ingress", "keycloak", "networking.k8s.io/v1")

    instance.resync_repairs(instance.path("networking.k8s.io/v1", "ingresses", "keycloak"))

    assert body_size() == rendered


def test_kubectl_patch_of_a_configmap_value_is_repaired(instance: Instance) -> None:
    def log_level() -> str:
        return str(instance.live("ConfigMap", "keycloak", "v1")["data"]["KC_LOG_LEVEL"])

    rendered = log_level()
    instance.kubectl(
        "patch", "configmap/keycloak", "--type=merge", "-p", '{"data":{"KC_LOG_LEVEL":"DEBUG"}}'
    )
    assert log_level() == "DEBUG"
    instance.watch_sees("ConfigMap", "keycloak", "v1")

    instance.resync_repairs(instance.path("v1", "configmaps", "keycloak"))

    assert log_level() == rendered


@pytest.mark.parametrize(
    ("kind", "api_version", "plural", "name"),
    [
        ("ConfigMap", "v1", "configmaps", "keycloak"),
        ("Service", "v1", "services", "keycloak-discovery"),
    ],
)
def test_kubectl_delete_of_an_object_is_repaired(
    instance: Instance, kind: str, api_version: str, plural: str, name: str
) -> None:
    before = instance.live(kind, name, api_version)
    instance.kubectl("delete", f"{kind.lower()}/{name}", "--wait=true")
    assert instance.cluster.get(kind, name, instance.namespace, api_version=api_version) is None
    instance.watch_sees(kind, name, api_version)

    instance.resync_repairs(instance.path(api_version, plural, name))

    after = instance.live(kind, name, api_version)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]  # made again, not found
    for field in ("data", "spec"):
        if field == "spec":
            # The apiserver allocates a new ClusterIP; the rest of the spec is the platform's.
            want = {k: v for k, v in (before.get("spec") or {}).items() if "clusterIP" not in k}
            have = {k: v for k, v in (after.get("spec") or {}).items() if "clusterIP" not in k}
            assert have == want
        else:
            assert after.get(field) == before.get(field)


def test_what_an_interrupted_attempt_left_live_is_repaired_by_the_next_change(
    instance: Instance,
) -> None:
    """A worker cut off mid-apply (killed, or its lease lost) leaves objects of a generation
    that was never recorded. A change back to the last revision's inputs must not trust the
    recorded digests: it finds what differs live and applies it (found by the soak)."""
    p = instance.cp.platform
    plan = p.get(instance.id).plan
    other = next(x.name for x in load_catalog().release(SERVICE, VERSION).plans if x.name != plan)
    (last,) = instance.cp.revisions(instance.id)[-1:]
    quota = "v1/ResourceQuota/city-platform-quota"

    # The attempt for the other plan writes the namespace baseline (quota included), then
    # every workload write fails until the attempt gives up: nothing is recorded.
    instance.proxy.faults.add(503, method="PATCH", path="/(deployments|statefulsets)/")
    p.change(instance.id, plan=other)
    instance.cp.worker.run_once()
    instance.proxy.faults.clear()
    assert instance.cp.revisions(instance.id)[-1].number == last.number
    left = instance.live("ResourceQuota", "city-platform-quota", "v1")
    assert left["metadata"]["annotations"][DIGEST_ANNOTATION] != last.inventory[quota]

    p.change(instance.id, plan=plan)
    ready = instance.cp.converge(instance.id, "the change back to the recorded plan")

    assert ready.phase == Phase.READY, describe(ready)
    live = instance.live("ResourceQuota", "city-platform-quota", "v1")
    newest = instance.cp.revisions(instance.id)[-1]
    assert live["metadata"]["annotations"][DIGEST_ANNOTATION] == newest.inventory[quota]
    assert newest.inventory[quota] == last.inventory[quota]
    instance.proxy.writes.reset()
    assert instance.cp.resync().outcome == Outcome.UNCHANGED
    assert instance.proxy.writes.total == 0, instance.proxy.writes.log
