"""Issue 13, item 4 — leases: one worker at a time per instance, even over long steps.

- a heartbeat renews the leases of the batch a worker works on, on the database clock, so a
  second worker never takes an instance over while the first is still working on it;
- a worker whose lease was taken over (expired, then claimed by another worker — even one of
  the same name) takes no further step and writes no status: the lease holder is a fence;
- deletion is level-based: the target asks the cluster to delete the namespace and returns;
  the instance stays ``Deleting`` with what was seen until a later pass finds it gone;
- on PostgreSQL, enqueueing sends a NOTIFY and idle workers of other processes wake at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from controlplane.db.engine import make_engine
from controlplane.kube.client import KubeClient
from controlplane.kube.retrying import RetryPolicy
from controlplane.provisioning import queueing
from controlplane.provisioning.models import Instance, Phase, ReconcileRequest, Revision, TargetKind
from controlplane.provisioning.reconciling import Outcome, Result
from controlplane.provisioning.targets import ApplyReport, Stack
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.targets.sealing import Sealer
from controlplane.provisioning.worker import WakeReason
from tests.cluster.fixtures import Cluster, cluster, kube  # noqa: F401
from tests.cluster.proxy import FaultProxy
from tests.provisioning.conftest import (  # noqa: F401 (fixtures)
    Platform,
    make_platform,
    make_worker,
    postgres_engine,
    sealing_dir,
)

SUFFIX = secrets.token_hex(3)
HOLD = "city-platform.be/test-hold"


class BlockingTarget(GitOpsTarget):
    """A GitOps target whose apply waits for ``proceed`` while ``blocking`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.blocking = threading.Event()
        self.entered = threading.Event()
        self.proceed = threading.Event()
        self.applies = 0
        self.prunes = 0

    def apply(self, stack: Stack, *, only: set[str] | None = None) -> ApplyReport:
        self.applies += 1
        if self.blocking.is_set():
            self.entered.set()
            assert self.proceed.wait(60), "the test never let the apply proceed"
        return super().apply(stack, only=only)

    def prune(self, stack: Stack, *, previous: Sequence[str]) -> list[str]:
        self.prunes += 1
        return super().prune(stack, previous=previous)


@pytest.fixture
def pg(
    postgres_engine: Engine,  # noqa: F811
    tmp_path: Path,
    sealing_dir: Path,  # noqa: F811
) -> tuple[Platform, BlockingTarget]:
    config = {"path": str(tmp_path / "tree")}
    platform = make_platform(postgres_engine, kind=TargetKind.GITOPS, config=config)
    target = BlockingTarget(
        tmp_path / "tree", name="main", sealer=Sealer.from_pem_file(sealing_dir / "sealing.crt")
    )
    return platform, target


def _db_now(engine: Engine) -> datetime:
    with Session(engine) as session:
        value: datetime = session.execute(select(func.now())).scalar_one()
        return value


def _request(engine: Engine, instance_id: uuid.UUID) -> ReconcileRequest:
    with Session(engine) as session:
        return session.execute(
            select(ReconcileRequest).where(ReconcileRequest.instance_id == instance_id)  # type: ignore[arg-type]
        ).scalar_one()


def _wait(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.postgres
def test_the_heartbeat_keeps_the_lease_over_a_step_longer_than_the_lease(
    pg: tuple[Platform, BlockingTarget],
) -> None:
    p, target = pg
    iid = p.create(p.tenant(f"gent-{SUFFIX}", "44021"), "site")
    registry = TargetRegistry(overrides={"main": target})
    first = make_worker(p, registry=registry, lease_seconds=1.0, heartbeat_seconds=0.1)
    second = make_worker(p, registry=registry, lease_seconds=1.0)
    target.blocking.set()
    thread, done = _in_thread(lambda: first.run_once("first"))
    try:
        assert target.entered.wait(30)
        claimed = _request(p.engine, iid)
        assert claimed.lease_owner is not None
        assert claimed.lease_expires_at is not None
        # Let the database clock run past the lease the claim took.
        _wait(
            "the first lease period to pass", lambda: _db_now(p.engine) > claimed.lease_expires_at
        )
        assert second.run_once("second") == 0  # the lease was renewed: nothing to take over
        held = _request(p.engine, iid)
        assert held.lease_owner == claimed.lease_owner
        assert held.lease_expires_at is not None
        assert held.lease_expires_at > _db_now(p.engine)
    finally:
        target.proceed.set()
        thread.join(30)
    assert done == [1]
    assert first.counts[Outcome.APPLIED] == 1
    assert not second.counts
    assert target.applies == 1
    assert p.get(iid).phase == Phase.COMMITTED


@pytest.mark.postgres
def test_a_worker_whose_lease_was_taken_over_stops_and_writes_nothing(
    pg: tuple[Platform, BlockingTarget], caplog: pytest.LogCaptureFixture
) -> None:
    p, target = pg
    iid = p.create(p.tenant(f"mol-{SUFFIX}", "13017"), "site")
    registry = TargetRegistry(overrides={"main": target})
    stale = make_worker(p, registry=registry, heartbeat_seconds=0.05)
    stale.run_until_idle()
    assert p.get(iid).phase == Phase.COMMITTED
    p.change(iid, version="2.0.0")
    target.blocking.set()
    prunes = target.prunes
    caplog.set_level(logging.WARNING, logger="controlplane.provisioning.queueing")
    # The same worker name: only the per-claim lease holder tells the two claims apart.
    thread, done = _in_thread(lambda: stale.run_once("w/0"))
    try:
        assert target.entered.wait(30)
        taken: list[queueing.Claim] = []

        def take_over() -> bool:
            # The stale worker's lease runs out (a pause longer than the lease: GC, network)
            # and a worker of the same name claims the request.
            with Session(p.engine) as session:
                session.execute(
                    update(ReconcileRequest)
                    .where(ReconcileRequest.instance_id == iid)  # type: ignore[arg-type]
                    .values(lease_expires_at=func.now() - timedelta(seconds=1))
                )
                session.commit()
            taken.extend(queueing.claim(p.engine, "w/0", lease_seconds=600))
            return bool(taken)

        _wait("another worker to take the lease over", take_over)
        _wait(
            "the stale worker's heartbeat to notice",
            lambda: any("lease taken over" in r.getMessage() for r in caplog.records),
        )
    finally:
        target.proceed.set()
        thread.join(30)
    assert done == [1]
    assert stale.counts[Outcome.LOST] == 1
    assert target.prunes == prunes  # no step after the lease was lost
    instance = p.get(iid)
    assert instance.phase == Phase.COMMITTED
    assert instance.observed_generation == 1
    with Session(p.engine) as session:
        assert [r.generation for r in session.execute(select(Revision)).scalars()] == [1]
    assert _request(p.engine, iid).lease_owner == taken[0].owner


@pytest.mark.postgres
def test_leases_are_computed_on_the_database_clock(
    pg: tuple[Platform, BlockingTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _target = pg
    iid = p.create(p.tenant(f"geel-{SUFFIX}", "13008"), "site")
    ahead = queueing.utcnow() + timedelta(hours=1)
    with monkeypatch.context() as patched:  # a worker whose machine's clock is an hour ahead
        patched.setattr(queueing, "utcnow", lambda: ahead)
        (fast,) = queueing.claim(p.engine, "fast-clock", lease_seconds=0.5)
    assert fast.instance_id == iid
    assert fast.lease_expires_at < _db_now(p.engine) + timedelta(minutes=1)
    _wait(
        "the lease to run out on the database clock",
        lambda: _db_now(p.engine) > fast.lease_expires_at,
    )
    (taken,) = queueing.claim(p.engine, "other", lease_seconds=60)
    assert taken.instance_id == iid


@pytest.mark.postgres
def test_an_idle_worker_wakes_on_notify_from_another_process(
    pg: tuple[Platform, BlockingTarget],
) -> None:
    p, target = pg
    tenant = p.tenant(f"aalst-{SUFFIX}", "41002")
    # Polling alone would not find the work during this test.
    worker = make_worker(p, registry=TargetRegistry(overrides={"main": target}), poll_seconds=3600)
    worker.start()
    other = make_engine(p.engine.url.render_as_string(hide_password=False))
    try:
        assert worker.listening.wait(30), "the worker never listened"
        # Another process (its own engine and connections) records new work.
        elsewhere = Platform(engine=other, target="main")
        iid = elsewhere.create(tenant, "site")
        _wait("the instance to be reconciled", lambda: p.get(iid).phase == Phase.COMMITTED)
    finally:
        worker.stop()
        other.dispose()
    assert worker.wakes[WakeReason.NOTIFIED] >= 1
    assert worker.wakes[WakeReason.TICK] == 0


# -- deletion on the real cluster


@pytest.fixture
def kube_platform(tmp_path: Path, cluster: Cluster) -> Iterator[Platform]:  # noqa: F811
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    yield make_platform(engine, kind=TargetKind.KUBERNETES, config={})
    with Session(engine) as session:
        namespaces = {row.namespace for row in session.execute(select(Instance)).scalars()}
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    for namespace in sorted(namespaces):
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)
    engine.dispose()


def _applied_namespace(p: Platform, iid: uuid.UUID) -> str:
    """The namespace the stack was applied to, recorded on the row (deletion removes that)."""
    with Session(p.engine) as session:
        revision = session.execute(select(Revision)).scalars().one()
        (namespace,) = [
            oid.rsplit("/", 1)[1] for oid in revision.inventory if oid.startswith("v1/Namespace/")
        ]
        row = session.get(Instance, iid)
        assert row is not None
        row.namespace = namespace  # the same unless the naming scheme moved on meanwhile
        session.add(row)
        session.commit()
    return namespace


def _hold(on: Cluster, namespace: str, finalizers: list[str] | None) -> None:
    """Set (or with None remove) the finalizers of the ``settings`` ConfigMap (merge patch)."""
    patch = json.dumps({"metadata": {"finalizers": finalizers}})
    on.kubectl("-n", namespace, "patch", "configmap", "settings", "--type=merge", "-p", patch)


def test_deletion_returns_at_once_and_a_later_pass_writes_deleted(
    kube_platform: Platform,
    kube: FaultProxy,  # noqa: F811
    cluster: Cluster,  # noqa: F811
) -> None:
    p = kube_platform
    policy = RetryPolicy(base_delay=0.001, max_delay=0.005, poll_interval=0.2, seed=1)
    port = KubeClient(kube.api_client(), retry=policy)
    registry = TargetRegistry(
        overrides={"main": KubernetesTarget(port, name="main", delete_timeout=5)}
    )
    results: list[Result] = []
    worker = make_worker(p, registry=registry, on_result=results.append)
    iid = p.create(p.tenant(f"lier-{SUFFIX}", "12021"), "forms")
    worker.run_until_idle(timeout=120)
    assert p.get(iid).phase == Phase.READY
    namespace = _applied_namespace(p, iid)
    # A finalizer keeps one object, and so the namespace, until the test lets it go.
    _hold(cluster, namespace, [HOLD])
    try:
        p.delete(iid)
        assert worker.run_once() == 1
        assert results[-1].outcome == Outcome.DELETING
        instance = p.get(iid)
        assert instance.phase == Phase.DELETING
        assert instance.deleted_at is None
        assert f"Namespace {namespace} deletion requested" in (instance.message or "")
        assert cluster.namespace_exists(namespace)

        # Later passes look again and report what the namespace controller says is left,
        # without deleting again.
        kube.writes.reset()

        def reported_finalizer() -> bool:
            p.make_all_due()
            worker.run_once()
            return HOLD in (p.get(iid).message or "")

        _wait("the Deleting message to name the finalizer", reported_finalizer, timeout=60)
        assert kube.writes.by_method.get("DELETE", 0) == 0, kube.writes.log
        assert p.get(iid).phase == Phase.DELETING
    finally:
        _hold(cluster, namespace, None)
    cluster.wait_for(
        f"namespace {namespace} to go", lambda: not cluster.namespace_exists(namespace)
    )
    p.make_all_due()
    assert worker.run_once() == 1
    assert results[-1].outcome == Outcome.DELETED
    instance = p.get(iid)
    assert instance.phase == Phase.DELETED
    assert instance.deleted_at is not None
