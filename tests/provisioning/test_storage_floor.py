"""Volumes never shrink, and never grow half-way: plan changes up and down, rollbacks, and
the expansion preflight, through the reconciler on the Kubernetes emulator and on GitOps.

The service here has what every shipped database has: a standalone claim sized by the plan
(``{{ plan.storage }}``), a StatefulSet that mounts it, and a ConfigMap that names the plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
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
from controlplane.kube.retrying import RetryPolicy
from controlplane.kube.target import KubeTarget
from controlplane.provisioning.models import Instance, Phase, Revision, TargetKind
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.worker import Worker
from controlplane.rendering.storage import quantity
from tests.kube_emulator import KubeEmulator
from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401
from tests.provisioning.conftest import (
    Platform,
    greeting_schema,
    make_platform,
    make_worker,
    publish,
)

SERVICE = "vault"
NAMESPACE = "gent-records"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"

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


def vault_release() -> ServiceRelease:
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
        bundle=TemplateBundle(files={"10-config.yaml.j2": CONFIG, "20-db.yaml.j2": DATABASE}),
    )


def _platform(tmp_path: Path, kind: TargetKind, config: dict[str, Any]) -> Platform:
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    platform = make_platform(engine, kind=kind, config=config)
    with Session(engine) as session:
        publish(session, vault_release())
        session.commit()
    return platform


def _create(p: Platform, plan: str = "small") -> uuid.UUID:
    return p.create(p.tenant("gent", "44021"), "records", service=SERVICE, plan=plan)


def _revisions(p: Platform) -> list[tuple[int, str, str | None, int | None]]:
    with Session(p.engine) as session:
        rows = session.exec(select(Revision).order_by(Revision.number)).all()  # type: ignore[arg-type]
        return [(r.number, r.plan, r.storage, r.rollback_of) for r in rows]


def _condition(instance: Instance, kind: str) -> dict[str, Any]:
    return {c["type"]: c for c in instance.conditions}[kind]


# -- on the Kubernetes emulator -------------------------------------------------------------


@pytest.fixture
def on_emulator(tmp_path: Path, kube_emulator: KubeEmulator) -> Iterator[tuple[Platform, Worker]]:  # noqa: F811
    platform = _platform(tmp_path, TargetKind.KUBERNETES, {})
    policy = RetryPolicy(base_delay=0.001, max_delay=0.005, poll_interval=0.01, seed=1)
    port = KubeTarget(kube_emulator.api_client(), retry=policy)
    registry = TargetRegistry(overrides={"main": KubernetesTarget(port, name="main")})
    yield platform, make_worker(platform, registry=registry)
    platform.engine.dispose()


def _storage_class(emulator: KubeEmulator, *, expandable: bool) -> None:
    emulator.seed(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS: "true"}},
            "provisioner": "rancher.io/local-path",
            "allowVolumeExpansion": expandable,
        }
    )


def _bind(emulator: KubeEmulator) -> None:
    """What the volume controller does: bind the claim at its requested size."""
    claim = emulator.get("PersistentVolumeClaim", "postgres-data", NAMESPACE)
    assert claim is not None
    size = claim["spec"]["resources"]["requests"]["storage"]
    kubernetes.client.CoreV1Api(
        emulator.api_client()
    ).patch_namespaced_persistent_volume_claim_status(
        "postgres-data",
        NAMESPACE,
        {"status": {"phase": "Bound", "capacity": {"storage": size}}},
    )


def _claim_size(emulator: KubeEmulator) -> str:
    claim = emulator.get("PersistentVolumeClaim", "postgres-data", NAMESPACE)
    assert claim is not None
    return str(claim["spec"]["resources"]["requests"]["storage"])


def _configured_plan(emulator: KubeEmulator) -> str:
    settings = emulator.get("ConfigMap", "settings", NAMESPACE)
    assert settings is not None
    return str(settings["data"]["plan"])


def test_plan_up_grows_the_volume_and_plan_down_keeps_it(
    on_emulator: tuple[Platform, Worker],
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p, worker = on_emulator
    _storage_class(kube_emulator, expandable=True)
    iid = _create(p)
    worker.run_until_idle()
    _bind(kube_emulator)
    assert (p.get(iid).phase, _claim_size(kube_emulator)) == (Phase.READY, "1Gi")

    p.change(iid, plan="medium")
    worker.run_until_idle()
    _bind(kube_emulator)
    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert _claim_size(kube_emulator) == "4Gi"

    kube_emulator.writes.reset()
    p.change(iid, plan="small")
    worker.run_until_idle()

    instance = p.get(iid)
    assert instance.phase == Phase.READY, instance.message
    # The claim keeps 4Gi (re-applied for its plan label, at the kept size); the rest follows
    # the plan.
    assert _claim_size(kube_emulator) == "4Gi"
    claim = kube_emulator.get("PersistentVolumeClaim", "postgres-data", NAMESPACE)
    assert claim is not None
    assert claim["metadata"]["labels"]["city-platform.be/plan"] == "small"
    assert _configured_plan(kube_emulator) == "small"
    postgres = kube_emulator.get("StatefulSet", "postgres", NAMESPACE)
    assert postgres is not None
    assert postgres["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == (
        "250m"
    )
    quota = kube_emulator.get("ResourceQuota", "city-platform-quota", NAMESPACE)
    assert quota is not None
    assert quota["spec"]["hard"]["requests.storage"] == "4Gi"
    applied = _condition(instance, "Applied")["message"]
    assert "Plan small has 1Gi of storage, but this instance's volumes keep 4Gi" in applied
    assert _revisions(p) == [
        (1, "small", "1Gi", None),
        (2, "medium", "4Gi", None),
        (3, "small", "4Gi", 1),
    ]

    # A resync of the kept size finds no drift: zero writes.
    kube_emulator.writes.reset()
    p.make_all_due()
    worker.run_until_idle()
    assert kube_emulator.writes.total == 0, kube_emulator.writes

    # Up again past the floor: the volume grows once more.
    p.change(iid, plan="large")
    worker.run_until_idle()
    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert _claim_size(kube_emulator) == "8Gi"


def test_rollback_to_a_smaller_plan_keeps_the_volume(
    on_emulator: tuple[Platform, Worker],
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p, worker = on_emulator
    _storage_class(kube_emulator, expandable=True)
    iid = _create(p)
    worker.run_until_idle()
    _bind(kube_emulator)
    p.change(iid, plan="large")
    worker.run_until_idle()
    _bind(kube_emulator)

    # Roll back to revision 1 (the inputs of the small plan).
    p.change(iid, plan="small")
    worker.run_until_idle()

    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert _claim_size(kube_emulator) == "8Gi"
    assert _configured_plan(kube_emulator) == "small"
    assert _revisions(p)[-1] == (3, "small", "8Gi", 1)


def test_growth_the_cluster_cannot_expand_fails_the_change_with_nothing_applied(
    on_emulator: tuple[Platform, Worker],
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p, worker = on_emulator
    _storage_class(kube_emulator, expandable=False)
    iid = _create(p)
    worker.run_until_idle()
    _bind(kube_emulator)
    kube_emulator.writes.reset()

    p.change(iid, plan="medium")
    worker.run_once()

    instance = p.get(iid)
    assert instance.phase == Phase.FAILED
    applied = _condition(instance, "Applied")
    assert (applied["status"], applied["reason"]) == ("False", "VolumeExpansionRefused")
    for part in ("postgres-data", "has 1Gi and the stack asks 4Gi", "'standard'", "nothing was"):
        assert part in applied["message"], applied["message"]
    assert instance.message is not None
    assert "allowVolumeExpansion: true" in instance.message
    assert "keep the current plan" in instance.message
    # Nothing was written: the quota, the ConfigMap and the workload stay on the small plan.
    assert kube_emulator.writes.total == 0, kube_emulator.writes
    assert _configured_plan(kube_emulator) == "small"
    assert _claim_size(kube_emulator) == "1Gi"
    assert _revisions(p) == [(1, "small", "1Gi", None)]

    # An operator allows expansion on the class; the next retry applies the change.
    _storage_class(kube_emulator, expandable=True)
    p.make_all_due()
    worker.run_until_idle()

    instance = p.get(iid)
    assert instance.phase == Phase.READY, instance.message
    assert _claim_size(kube_emulator) == "4Gi"
    assert _configured_plan(kube_emulator) == "medium"
    assert _revisions(p)[-1] == (2, "medium", "4Gi", None)


def test_keeping_the_current_plan_recovers_from_a_refused_growth(
    on_emulator: tuple[Platform, Worker],
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p, worker = on_emulator
    _storage_class(kube_emulator, expandable=False)
    iid = _create(p)
    worker.run_until_idle()
    _bind(kube_emulator)
    p.change(iid, plan="medium")
    worker.run_once()
    assert p.get(iid).phase == Phase.FAILED

    p.change(iid, plan="small")
    worker.run_until_idle()

    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert _claim_size(kube_emulator) == "1Gi"


# -- every shipped service: up through its plans and down again ----------------------------

#: The last declared version of each shipped service.
SHIPPED = {release.name: release for release in load_catalog().releases()}


def _bind_all(emulator: KubeEmulator, namespace: str) -> dict[str, str]:
    """Bind every claim of the namespace at its request; their sizes by name."""
    core = kubernetes.client.CoreV1Api(emulator.api_client())
    sizes = {}
    for claim in emulator.objects("PersistentVolumeClaim", namespace):
        name = claim["metadata"]["name"]
        size = claim["spec"]["resources"]["requests"]["storage"]
        sizes[name] = size
        if (claim.get("status") or {}).get("phase") != "Bound":
            core.patch_namespaced_persistent_volume_claim_status(
                name, namespace, {"status": {"phase": "Bound", "capacity": {"storage": size}}}
            )
    return sizes


@pytest.mark.parametrize("service", sorted(SHIPPED))
def test_every_shipped_service_changes_plan_up_and_down(
    service: str,
    on_emulator: tuple[Platform, Worker],
    kube_emulator: KubeEmulator,  # noqa: F811
) -> None:
    p, worker = on_emulator
    release = SHIPPED[service]
    with Session(p.engine) as session:
        publish(session, release)
        session.commit()
    _storage_class(kube_emulator, expandable=True)
    plans = sorted(release.plans, key=lambda plan: quantity(plan.storage))
    route = [*plans, *reversed(plans[:-1])]  # small → … → largest → … → small
    largest = plans[-1].storage
    iid = p.create(
        p.tenant("gent", "44021"),
        "app",
        service=service,
        version=release.version.version,
        plan=route[0].name,
    )
    namespace = "gent-app"
    seen: dict[str, str] = {}
    for step, plan in enumerate(route):
        if step:
            p.change(iid, plan=plan.name)
        worker.run_until_idle()
        instance = p.get(iid)
        assert instance.phase == Phase.READY, (plan.name, instance.message)
        sizes = _bind_all(kube_emulator, namespace)
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

    assert p.get(iid).phase == Phase.READY, p.get(iid).message
    assert _claim_in_tree(tree)["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert _revisions(p) == [(1, "large", "8Gi", None), (2, "small", "8Gi", None)]
