"""Every lifecycle operation on every shipped service, through the real reconciler, on the
real cluster.

For each service of ``catalog/`` one instance walks: create on the older version and the
smallest plan → plan up (more replicas, larger volumes: the claims grow, since the default
StorageClass allows expansion) → plan down (fewer replicas; the volumes keep their size) →
a parameter change → upgrade to the newer version → rollback → delete. After every step
the instance must be Ready (its workloads' readiness as the real controllers report it),
and the live objects must be what the platform rendered for that step. Delete must leave
nothing: the namespace is gone through the real namespace controller, no PersistentVolume
of it remains, and nothing anywhere carries the instance's id label.

The eight walks run at once in threads (one control plane each), started by a module
fixture; one test per service judges its walk. A second test proves that a plan change
whose volume growth the StorageClass does not allow is refused before the first write.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease, TemplateBundle
from controlplane.catalog.versions import parse_version
from controlplane.kube.objects import INSTANCE_LABEL
from controlplane.provisioning.models import Phase
from controlplane.provisioning.targets.kubernetes import DIGEST_ANNOTATION
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from tests.cluster.fixtures import Cluster
from tests.cluster.platform import ClusterPlatform, describe, pod_spec
from tests.cluster.proxy import FaultProxy
from tests.provisioning.conftest import SERVER_SECRET

NIS_CODE = "44021"
RELEASES: dict[str, list[ServiceRelease]] = {}
for _release in load_catalog().releases():
    RELEASES.setdefault(_release.name, []).append(_release)
for _versions in RELEASES.values():
    _versions.sort(key=lambda r: parse_version(r.version.version))
SERVICES = sorted(RELEASES)
WORKLOADS = ("Deployment", "StatefulSet", "CronJob")


# -- what the platform renders, and what is live ------------------------------------------


@dataclass(frozen=True)
class Subject:
    """One instance as the renderer sees it, to compute what each step should leave."""

    tenant: TenantRef
    name: str
    instance_id: str

    def render(
        self,
        release: ServiceRelease,
        plan: str,
        parameters: dict[str, Any],
        storage_floor: str | None = None,
    ) -> list[dict[str, Any]]:
        renderer = Renderer(server_secret=SERVER_SECRET, kubernetes_version="1.33")
        rendered = renderer.render(
            release,
            plan=plan,
            tenant=self.tenant,
            instance=InstanceRef(name=self.name, id=self.instance_id),
            parameters=parameters,
            storage_floor=storage_floor,
        )
        return [dict(o) for o in rendered.objects]


def _claims(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {
        o["metadata"]["name"]: str(o["spec"]["resources"]["requests"]["storage"])
        for o in objects
        if o["kind"] == "PersistentVolumeClaim"
    }


def _replicas(objects: list[dict[str, Any]]) -> dict[str, int]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": int(o["spec"].get("replicas", 1))
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def _images(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    out = {}
    for o in objects:
        if o["kind"] in WORKLOADS:
            spec = pod_spec(o)
            containers = [*(spec.get("initContainers") or []), *spec["containers"]]
            out[f"{o['kind']}/{o['metadata']['name']}"] = [c["image"] for c in containers]
    return out


def _quota(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (quota,) = [o for o in objects if o["kind"] == "ResourceQuota"]
    return {k: parse_quantity(v) for k, v in quota["spec"]["hard"].items()}


def _hosts(objects: list[dict[str, Any]]) -> set[str]:
    return {
        rule["host"]
        for o in objects
        if o["kind"] == "Ingress"
        for rule in o["spec"].get("rules") or []
        if rule.get("host")
    }


def _live(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    kinds = [
        ("v1", "PersistentVolumeClaim"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "ResourceQuota"),
    ]
    out = []
    for api_version, kind in kinds:
        for obj in cluster.objects(kind, namespace, api_version=api_version):
            out.append({**obj, "kind": kind})
    return out


def _leftovers(cluster: Cluster, instance_id: str, namespace: str) -> list[str]:
    """Everything on the cluster that still carries the instance's id or binds its volumes."""
    listable = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    found = cluster.kubectl(
        "get",
        ",".join(listable),
        "--all-namespaces",
        "--ignore-not-found",
        "-l",
        f"{INSTANCE_LABEL}={instance_id}",
        "-o",
        "name",
    ).stdout.split()
    volumes = [
        f"persistentvolume/{pv['metadata']['name']} ({(pv.get('status') or {}).get('phase')})"
        for pv in cluster.objects("PersistentVolume", api_version="v1")
        if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace
    ]
    return found + volumes


# -- one walk per service ------------------------------------------------------------------


@dataclass
class Walk:
    service: str
    steps: list[str] = field(default_factory=list)
    error: BaseException | None = None
    trace: str = ""
    seconds: float = 0.0


def walk(service: str, cluster: Cluster, workdir: Path, slug: str, record: Walk) -> None:
    old, new = RELEASES[service][0], RELEASES[service][-1]
    cp = ClusterPlatform(workdir, cluster.api_client)
    p = cp.platform
    try:
        tenant = p.tenant(slug, NIS_CODE)
        name = service
        namespace = f"{slug}-{name}"
        iid = p.create(tenant, name, service=service, version=old.version.version, plan="small")
        subject = Subject(TenantRef(slug=slug, name=tenant.name, nis_code=NIS_CODE), name, str(iid))

        def step(what: str) -> None:
            record.steps.append(what)

        def ready(what: str) -> list[dict[str, Any]]:
            instance = cp.converge(iid, f"{service}: {what}")
            assert instance.phase == Phase.READY, describe(instance)
            return _live(cluster, namespace)

        step(f"create {old.version.version} on plan small")
        live = ready(record.steps[-1])
        small = subject.render(old, "small", {})
        assert _claims(live) == _claims(small)
        assert _replicas(live) == _replicas(small)
        assert _images(live) == _images(small)
        assert _quota(live) == _quota(small)

        step("plan change up: small → medium")
        p.change(iid, plan="medium")
        live = ready(record.steps[-1])
        medium = subject.render(old, "medium", {})
        grown = _claims(medium)
        assert grown != _claims(small), "the medium plan has no larger volume to grow"
        assert _claims(live) == grown, "the claims did not grow to the medium plan"
        assert _replicas(live) == _replicas(medium)
        assert _quota(live) == _quota(medium)

        step("plan change down: medium → small (volumes keep their size)")
        p.change(iid, plan="small")
        live = ready(record.steps[-1])
        assert _claims(live) == grown, "a volume shrank (or changed) on the way down"
        assert _replicas(live) == _replicas(small)
        # The quota is the small plan's again (tightened once the rollout was done), but for
        # the storage that the volumes keep.
        medium_plan = old.plan("medium")
        assert medium_plan is not None
        floor = medium_plan.storage
        assert _quota(live) == _quota(subject.render(old, "small", {}, storage_floor=floor))

        step("parameter change: hostname")
        parameters = {"hostname": f"{name}.{slug}.example.be"}
        p.change(iid, parameters=parameters)
        live = ready(record.steps[-1])
        hosts = _hosts(subject.render(old, "small", parameters, storage_floor=floor))
        assert parameters["hostname"] in hosts
        assert _hosts(live) == hosts
        assert _claims(live) == grown

        step(f"upgrade {old.version.version} → {new.version.version}")
        p.change(iid, version=new.version.version)
        live = ready(record.steps[-1])
        assert _images(live) == _images(subject.render(new, "small", parameters))
        assert _claims(live) == grown

        step(f"rollback to {old.version.version}")
        p.change(iid, version=old.version.version)
        live = ready(record.steps[-1])
        assert _images(live) == _images(subject.render(old, "small", parameters))
        assert _claims(live) == grown
        revisions = cp.revisions(iid)
        assert [r.number for r in revisions] == [1, 2, 3, 4, 5, 6]
        assert revisions[-1].rollback_of == 4, "the rollback re-applies revision 4's inputs"

        step("delete")
        p.delete(iid)
        instance = cp.converge(iid, f"{service}: delete")
        assert instance.phase == Phase.DELETED, describe(instance)
        assert not cluster.namespace_exists(namespace)
        # The namespace controller has removed the claims; the volume controller then
        # reclaims their volumes (policy Delete) on its own time.
        cluster.wait_for(
            f"nothing of {namespace} left",
            lambda: not _leftovers(cluster, str(iid), namespace),
            timeout=120,
            interval=2,
        )
        step("nothing left")
    finally:
        cp.close()


@pytest.fixture(scope="module")
def walks(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Walk]]:
    slug = f"lc{secrets.token_hex(2)}"  # fresh namespaces for every run
    root = tmp_path_factory.mktemp("lifecycle")
    # Only the services whose test was selected (``-k keycloak`` walks keycloak alone).
    selected = {
        item.callspec.params["service"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    records = {service: Walk(service) for service in SERVICES if service in selected}

    def run(service: str) -> None:
        record = records[service]
        started = time.monotonic()
        try:
            walk(service, cluster, root / service, slug, record)
        except BaseException as exc:  # judged per service below (pytest.fail included)
            record.error = exc
            record.trace = traceback.format_exc()
        record.seconds = time.monotonic() - started

    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        list(pool.map(run, records))
    yield records
    for service in records:  # a failed walk may have left its namespace
        with contextlib.suppress(ApiException):
            kubernetes.client.CoreV1Api(cluster.api_client).delete_namespace(f"{slug}-{service}")


@pytest.mark.parametrize("service", SERVICES)
def test_every_lifecycle_operation_converges(walks: dict[str, Walk], service: str) -> None:
    record = walks[service]
    if record.error is not None:
        done = " → ".join(record.steps[:-1]) or "nothing"
        pytest.fail(
            f"{service}: step {record.steps[-1] if record.steps else 'setup'!r} failed "
            f"(done before: {done}):\n{record.error}\n\n{record.trace}",
            pytrace=False,
        )
    assert record.steps[-1] == "nothing left"


# -- growth the StorageClass does not allow ------------------------------------------------


def _on_class(release: ServiceRelease, storage_class: str) -> ServiceRelease:
    """The release with every standalone claim on ``storage_class`` (templates name none)."""
    files = {}
    marker = "kind: PersistentVolumeClaim\n"
    for path, text in release.bundle.files.items():
        if marker in text:
            text = text.replace(
                "  accessModes: [ReadWriteOnce]\n",
                f"  storageClassName: {storage_class}\n  accessModes: [ReadWriteOnce]\n",
            )
            assert storage_class in text, f"{path}: no claim spec to put on the class"
        files[path] = text
    return release.model_copy(update={"bundle": TemplateBundle(files=files)})


@pytest.fixture
def rigid_class(cluster: Cluster) -> Iterator[str]:
    """A StorageClass of its own that does not allow volume expansion; removed afterwards."""
    name = f"rigid-{secrets.token_hex(3)}"
    storage = kubernetes.client.StorageV1Api(cluster.api_client)
    storage.create_storage_class(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name, "labels": {"city-platform.be/test": "true"}},
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": False,
        }
    )
    yield name
    with contextlib.suppress(ApiException):
        storage.delete_storage_class(name)


def test_growth_the_storage_class_does_not_allow_is_refused_before_any_write(
    cluster: Cluster, kube: FaultProxy, rigid_class: str, tmp_path: Path
) -> None:
    release = _on_class(RELEASES["keycloak"][-1], rigid_class)
    cp = ClusterPlatform(tmp_path, kube.api_client(), releases=[release])
    p = cp.platform
    slug = f"rg{secrets.token_hex(2)}"
    namespace = f"{slug}-keycloak"
    try:
        iid = p.create(p.tenant(slug, NIS_CODE), "keycloak", service="keycloak", version="26.0.7")
        cp.converge(iid, "keycloak on a class without expansion: create")
        claim = cluster.get("PersistentVolumeClaim", "postgres-data", namespace, api_version="v1")
        assert claim is not None
        assert claim["spec"]["storageClassName"] == rigid_class
        assert claim["status"]["phase"] == "Bound"
        before = {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for kind in ("ConfigMap", "ResourceQuota", "PersistentVolumeClaim")
            for o in cluster.objects(kind, namespace, api_version="v1")
        }

        kube.writes.reset()
        p.change(iid, plan="medium")
        deadline = time.monotonic() + 60
        while p.get(iid).observed_generation != p.get(iid).generation:
            assert time.monotonic() < deadline, describe(p.get(iid))
            cp.worker.run_once()

        instance = p.get(iid)
        assert instance.phase == Phase.FAILED, describe(instance)
        applied = {c["type"]: c for c in instance.conditions}["Applied"]
        assert (applied["status"], applied["reason"]) == ("False", "VolumeExpansionRefused")
        for part in (
            "v1/PersistentVolumeClaim/postgres-data",
            "has 5Gi and the stack asks 10Gi",
            repr(rigid_class),
            "nothing was applied",
        ):
            assert part in applied["message"], applied["message"]
        assert "allowVolumeExpansion: true" in (instance.message or "")
        # Not one write reached the apiserver, and nothing changed there.
        assert kube.writes.total == 0, kube.writes.log
        after = {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for kind in ("ConfigMap", "ResourceQuota", "PersistentVolumeClaim")
            for o in cluster.objects(kind, namespace, api_version="v1")
        }
        assert after == before
        # Every object is still the one revision 1 applied (its digest annotation).
        (revision,) = cp.revisions(iid)
        for oid, digest in revision.inventory.items():
            api_version, kind, name = oid.rsplit("/", 2)
            live = cluster.get(kind, name, namespace, api_version=api_version)
            assert live is not None, oid
            assert live["metadata"]["annotations"][DIGEST_ANNOTATION] == digest, oid
        deployment = cluster.get("Deployment", "keycloak", namespace, api_version="apps/v1")
        assert deployment is not None
        assert deployment["spec"]["replicas"] == 1

        # Keeping the current plan recovers: Ready again, still nothing grown.
        p.change(iid, plan="small")
        cp.converge(iid, "keycloak back on the small plan")
        claim = cluster.get("PersistentVolumeClaim", "postgres-data", namespace, api_version="v1")
        assert claim is not None
        assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
        assert json.dumps(claim["status"]["capacity"]) == json.dumps({"storage": "5Gi"})

        p.delete(iid)
        cp.converge(iid, "keycloak on a class without expansion: delete")
        cluster.wait_for(
            f"the volumes of {namespace} reclaimed",
            lambda: not _leftovers(cluster, str(iid), namespace),
            timeout=120,
            interval=2,
        )
    finally:
        cp.close()
        with contextlib.suppress(ApiException):
            kubernetes.client.CoreV1Api(cluster.api_client).delete_namespace(namespace)
