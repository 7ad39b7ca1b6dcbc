"""Volumes never shrink, and never grow half-way: plan changes up and down, rollbacks, and
the expansion preflight, through the reconciler on the real cluster (through the fault
proxy, which counts writes) and on GitOps.

The service here has what every shipped database has: a standalone claim sized by the plan
(``{{ plan.storage }}``), a StatefulSet that mounts it, and a ConfigMap that names the plan.
On the cluster its claim names a StorageClass of the test's own (host-path provisioned, so
claims bind at once; expansion allowed or not as the test says), and the tenant's slug has a
random suffix (the cluster is shared); the class and the instances' namespaces are deleted
when the test ends.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import (
    Plan,
    RequestLimit,
    ServiceRelease,
    ServiceVersion,
    TemplateBundle,
)
from controlplane.db.engine import make_engine
from controlplane.kube.client import KubeClient
from controlplane.kube.retrying import RetryPolicy
from controlplane.provisioning.models import Instance, Phase, Revision, TargetKind
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.worker import Worker
from controlplane.rendering.storage import quantity
from tests.cluster.fixtures import Cluster, cluster, kube  # noqa: F401
from tests.cluster.proxy import FaultProxy
from tests.provisioning.conftest import (
    Platform,
    greeting_schema,
    make_platform,
    make_worker,
    publish,
)

SERVICE = "vault"

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  plan: {{ plan.name }}
"""
DATABASE = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: postgres-data
  labels:
    app.kubernetes.io/component: postgres
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: {{ plan.storage }}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
  labels:
    app.kubernetes.io/component: postgres
spec:
  serviceName: postgres
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: postgres
      app.kubernetes.io/instance: {{ instance.name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: postgres
        app.kubernetes.io/instance: {{ instance.name }}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 999
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: postgres
          image: {{ images.postgres }}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
          resources:
            requests: {cpu: {{ plan.cpu.request }}, memory: {{ plan.memory.request }}}
            limits: {cpu: {{ plan.cpu.limit }}, memory: {{ plan.memory.limit }}}
          volumeMounts:
            - name: data
              mountPath: /var/lib/postgresql/data
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: postgres-data
"""


def _plan(name: str, storage: str, cpu: str) -> Plan:
    return Plan(
        name=name,
        title=name.title(),
        monthly_price="10.00",  # type: ignore[arg-type]
        replicas=1,
        cpu=RequestLimit(request=cpu, limit=cpu),
        memory=RequestLimit(request="256Mi", limit="256Mi"),
        storage=storage,
    )


def vault_release(storage_class: str | None = None) -> ServiceRelease:
    """The vault service; its claim names ``storage_class`` when given (else the default)."""
    database = DATABASE
    if storage_class is not None:
        database = DATABASE.replace(
            "spec:\n  accessModes", f"spec:\n  storageClassName: {storage_class}\n  accessModes", 1
        )
    return ServiceRelease(
        name=SERVICE,
        title="Vault",
        description="A database on a claim sized by the plan.",
        category="test",
        owner="tests",
        version=ServiceVersion(
            version="1.0.0",
            templates="vault/1.0.0",
            app_version="1.0.0",
            images={"postgres": "postgres:16.6"},
        ),
        plans=[
            _plan("small", "1Gi", "250m"),
            _plan("medium", "4Gi", "500m"),
            _plan("large", "8Gi", "1"),
        ],
        parameters=greeting_schema(),
        bundle=TemplateBundle(files={"10-config.yaml.j2": CONFIG, "20-db.yaml.j2": database}),
    )


def _platform(
    tmp_path: Path, kind: TargetKind, config: dict[str, Any], storage_class: str | None = None
) -> Platform:
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    platform = make_platform(engine, kind=kind, config=config)
    with Session(engine) as session:
        publish(session, vault_release(storage_class))
        session.commit()
    return platform


def _create(p: Platform, plan: str = "small", *, slug: str = "gent") -> uuid.UUID:
    return p.create(p.tenant(slug, "44021"), "records", service=SERVICE, plan=plan)


def _revisions(p: Platform) -> list[tuple[int, str, str | None, int | None]]:
    with Session(p.engine) as session:
        rows = session.exec(select(Revision).order_by(Revision.number)).all()  # type: ignore[arg-type]
        return [(r.number, r.plan, r.storage, r.rollback_of) for r in rows]


def _condition(instance: Instance, kind: str) -> dict[str, Any]:
    return {c["type"]: c for c in instance.conditions}[kind]


# -- on the real cluster -------------------------------------------------------------------


@dataclass
class OnCluster:
    """A platform whose target is the cluster (through ``kube``), and its test's own names."""

    platform: Platform
    worker: Worker
    cluster: Cluster
    kube: FaultProxy
    #: The StorageClass the vault's claim names (the test's own; no expansion until allowed).
    storage_class: str
    #: The tenant's slug, unique on the shared cluster.
    slug: str

    @property
    def namespace(self) -> str:
        return f"{self.slug}-records"

    def create(self, plan: str = "small") -> uuid.UUID:
        return _create(self.platform, plan, slug=self.slug)

    def settle(self, instance_id: uuid.UUID) -> Instance:
        """Reconciles until the instance is no longer on its way (Ready, Failed, …).

        ``run_until_idle`` stops when nothing is due *now*; a stack whose pods kwok has not
        marked Ready yet is due again a moment later. Degraded is on its way too: a target
        error (an apiserver slow under the suite's load) is retried with backoff.
        """
        deadline = time.monotonic() + 120
        while True:
            self.worker.run_until_idle()
            instance = self.platform.get(instance_id)
            if instance.phase not in (Phase.PENDING, Phase.PROVISIONING, Phase.DEGRADED):
                return instance
            if time.monotonic() > deadline:
                pytest.fail(f"still {instance.phase} after 120 s: {instance.message}")
            time.sleep(0.2)

    def allow_expansion(self, allowed: bool) -> None:
        """What a cluster operator does: set ``allowVolumeExpansion`` on the class."""
        kubernetes.client.StorageV1Api(self.cluster.api_client).patch_storage_class(
            self.storage_class, {"allowVolumeExpansion": allowed}
        )

    def get(self, kind: str, name: str, api_version: str) -> dict[str, Any]:
        live = self.cluster.get(kind, name, self.namespace, api_version=api_version)
        assert live is not None, (kind, name)
        return live

    def claim_size(self) -> str:
        claim = self.get("PersistentVolumeClaim", "postgres-data", "v1")
        return str(claim["spec"]["resources"]["requests"]["storage"])

    def configured_plan(self) -> str:
        return str(self.get("ConfigMap", "settings", "v1")["data"]["plan"])

    def bound(self, namespace: str | None = None) -> dict[str, str]:
        """Waits until every claim of the namespace is bound; their requested sizes by name."""
        namespace = namespace or self.namespace

        def all_bound() -> dict[str, str] | None:
            claims = self.cluster.objects("PersistentVolumeClaim", namespace, api_version="v1")
            if not claims or any((c.get("status") or {}).get("phase") != "Bound" for c in claims):
                return None
            return {
                c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"] for c in claims
            }

        sizes: dict[str, str] = self.cluster.wait_for(f"the claims of {namespace} bound", all_bound)
        return sizes


@pytest.fixture
def on_cluster(
    tmp_path: Path,
    cluster: Cluster,  # noqa: F811
    kube: FaultProxy,  # noqa: F811
) -> Iterator[OnCluster]:
    storage = kubernetes.client.StorageV1Api(cluster.api_client)
    name = f"t-storage-floor-{secrets.token_hex(4)}"
    storage.create_storage_class(
        {
            "metadata": {"name": name},
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": False,
        }
    )
    platform = _platform(tmp_path, TargetKind.KUBERNETES, {}, storage_class=name)
    policy = RetryPolicy(base_delay=0.001, max_delay=0.005, poll_interval=0.2, seed=1)
    port = KubeClient(kube.api_client(), retry=policy)
    registry = TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})
    worker = make_worker(platform, registry=registry)
    yield OnCluster(platform, worker, cluster, kube, name, f"gent-{secrets.token_hex(3)}")
    with Session(platform.engine) as session:
        namespaces = {row.namespace for row in session.exec(select(Instance)).all()}
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    for namespace in sorted(namespaces):
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)
    with contextlib.suppress(ApiException):
        storage.delete_storage_class(name)
    port.close()
    platform.engine.dispose()


def test_plan_up_grows_the_volume_and_plan_down_keeps_it(on_cluster: OnCluster) -> None:
    on, p, worker = on_cluster, on_cluster.platform, on_cluster.worker
    on.allow_expansion(True)
    iid = on.create()
    on.settle(iid)
    on.bound()
    assert (p.get(iid).phase, on.claim_size()) == (Phase.READY, "1Gi")

    p.change(iid, plan="medium")
    on.settle(iid)
    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert on.claim_size() == "4Gi"

    p.change(iid, plan="small")
    worker.run_once()
    # The apply tells the tenant why the volume stays larger, and so does the status after
    # the rollout, when the readiness checks of the unchanged objects have run.
    kept = "Plan small has 1Gi of storage, but this instance's volumes keep 4Gi"
    assert kept in _condition(p.get(iid), "Applied")["message"]
    instance = on.settle(iid)

    assert instance.phase == Phase.READY, instance.message
    p.make_all_due()  # and after a resync of the unchanged objects
    worker.run_until_idle()
    assert kept in _condition(p.get(iid), "Applied")["message"]
    # The claim keeps 4Gi (re-applied for its plan label, at the kept size); the rest follows
    # the plan.
    assert on.claim_size() == "4Gi"
    claim = on.get("PersistentVolumeClaim", "postgres-data", "v1")
    assert claim["metadata"]["labels"]["city-platform.be/plan"] == "small"
    assert on.configured_plan() == "small"
    postgres = on.get("StatefulSet", "postgres", "apps/v1")
    assert postgres["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == (
        "250m"
    )
    quota = on.get("ResourceQuota", "city-platform-quota", "v1")
    assert quota["spec"]["hard"]["requests.storage"] == "4Gi"
    assert _revisions(p) == [
        (1, "small", "1Gi", None),
        (2, "medium", "4Gi", None),
        (3, "small", "4Gi", 1),
    ]

    # A resync of the kept size finds no drift: zero writes.
    on.kube.writes.reset()
    p.make_all_due()
    worker.run_until_idle()
    assert on.kube.writes.total == 0, on.kube.writes

    # Up again past the floor: the volume grows once more.
    p.change(iid, plan="large")
    on.settle(iid)
    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert on.claim_size() == "8Gi"


def test_rollback_to_a_smaller_plan_keeps_the_volume(on_cluster: OnCluster) -> None:
    on, p = on_cluster, on_cluster.platform
    on.allow_expansion(True)
    iid = on.create()
    on.settle(iid)
    on.bound()
    p.change(iid, plan="large")
    on.settle(iid)

    # Roll back to revision 1 (the inputs of the small plan).
    p.change(iid, plan="small")
    on.settle(iid)

    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert on.claim_size() == "8Gi"
    assert on.configured_plan() == "small"
    assert _revisions(p)[-1] == (3, "small", "8Gi", 1)


def test_growth_the_cluster_cannot_expand_fails_the_change_with_nothing_applied(
    on_cluster: OnCluster,
) -> None:
    on, p, worker = on_cluster, on_cluster.platform, on_cluster.worker
    iid = on.create()
    on.settle(iid)
    on.bound()
    on.kube.writes.reset()

    p.change(iid, plan="medium")
    worker.run_once()

    instance = p.get(iid)
    assert instance.phase == Phase.FAILED
    applied = _condition(instance, "Applied")
    assert (applied["status"], applied["reason"]) == ("False", "VolumeExpansionRefused")
    for part in (
        "postgres-data",
        "has 1Gi and the stack asks 4Gi",
        f"{on.storage_class!r}",
        "nothing was",
    ):
        assert part in applied["message"], applied["message"]
    assert instance.message is not None
    assert "allowVolumeExpansion: true" in instance.message
    assert "keep the current plan" in instance.message
    # Nothing was written: the quota, the ConfigMap and the workload stay on the small plan.
    assert on.kube.writes.total == 0, on.kube.writes
    assert on.configured_plan() == "small"
    assert on.claim_size() == "1Gi"
    assert _revisions(p) == [(1, "small", "1Gi", None)]

    # An operator allows expansion on the class; the next retry applies the change.
    on.allow_expansion(True)
    p.make_all_due()
    on.settle(iid)

    instance = p.get(iid)
    assert instance.phase == Phase.READY, instance.message
    assert on.claim_size() == "4Gi"
    assert on.configured_plan() == "medium"
    assert _revisions(p)[-1] == (2, "medium", "4Gi", None)


def test_keeping_the_current_plan_recovers_from_a_refused_growth(on_cluster: OnCluster) -> None:
    on, p, worker = on_cluster, on_cluster.platform, on_cluster.worker
    iid = on.create()
    on.settle(iid)
    on.bound()
    p.change(iid, plan="medium")
    worker.run_once()
    assert p.get(iid).phase == Phase.FAILED

    p.change(iid, plan="small")
    on.settle(iid)

    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert on.claim_size() == "1Gi"


# -- every shipped service: up through its plans and down again ----------------------------

#: The last declared version of each shipped service.
SHIPPED = {release.name: release for release in load_catalog().releases()}


@pytest.mark.parametrize("service", sorted(SHIPPED))
def test_every_shipped_service_changes_plan_up_and_down(
    service: str, on_cluster: OnCluster
) -> None:
    # The shipped claims name no class: the cluster's default (which allows expansion) binds
    # them.
    p = on_cluster.platform
    release = SHIPPED[service]
    with Session(p.engine) as session:
        publish(session, release)
        session.commit()
    plans = sorted(release.plans, key=lambda plan: quantity(plan.storage))
    route = [*plans, *reversed(plans[:-1])]  # small → … → largest → … → small
    largest = plans[-1].storage
    iid = p.create(
        p.tenant(on_cluster.slug, "44021"),
        "app",
        service=service,
        version=release.version.version,
        plan=route[0].name,
    )
    namespace = f"{on_cluster.slug}-app"
    seen: dict[str, str] = {}
    for step, plan in enumerate(route):
        if step:
            p.change(iid, plan=plan.name)
        instance = on_cluster.settle(iid)
        assert instance.phase == Phase.READY, (plan.name, instance.message)
        sizes = on_cluster.bound(namespace)
        for name, size in sizes.items():
            # No claim ever shrinks, and the plan's claims never fall below the plan.
            assert quantity(size) >= quantity(seen.get(name, "0")), (plan.name, name, size)
        seen = sizes
    assert sizes, f"{service} has no volumes"
    # Back on the smallest plan, the plan-dependent claims keep the largest plan's size.
    assert any(size == largest for size in sizes.values()), sizes
    with Session(p.engine) as session:
        last = session.exec(select(Revision).order_by(Revision.number.desc())).first()  # type: ignore[attr-defined]
        assert last is not None
        assert (last.plan, last.storage) == (plans[0].name, largest)


# -- on GitOps: the same floor in the files -------------------------------------------------


@pytest.fixture
def gitops(tmp_path: Path, sealing_dir: Path) -> Iterator[tuple[Platform, Worker, Path]]:
    tree = tmp_path / "tree"
    config = {"path": str(tree), "sealing_cert": str(sealing_dir / "sealing.crt")}
    platform = _platform(tmp_path, TargetKind.GITOPS, config)
    yield platform, make_worker(platform), tree
    platform.engine.dispose()


def _claim_in_tree(tree: Path) -> dict[str, Any]:
    (path,) = [f for f in tree.rglob("*.yaml") if "postgres-data" in f.name]
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (claim,) = [d for d in documents if d.get("kind") == "PersistentVolumeClaim"]
    return claim


def test_gitops_files_never_ask_a_volume_to_shrink(
    gitops: tuple[Platform, Worker, Path],
) -> None:
    p, worker, tree = gitops
    iid = _create(p, plan="large")
    worker.run_until_idle()

    p.change(iid, plan="small")
    worker.run_until_idle()

    assert p.get(iid).phase == Phase.COMMITTED, p.get(iid).message
    assert _claim_in_tree(tree)["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert _revisions(p) == [(1, "large", "8Gi", None), (2, "small", "8Gi", None)]
