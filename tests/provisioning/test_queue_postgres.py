"""The reconcile queue on real PostgreSQL: many workers share the work with leases, each
generation is applied exactly once, and an abandoned lease is taken over after it expires."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from controlplane.provisioning import queueing
from controlplane.provisioning.models import Phase, ReconcileRequest, Revision, TargetKind
from controlplane.provisioning.targets import ApplyReport, Stack
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.provisioning.targets.sealing import Sealer
from controlplane.provisioning.worker import TooManyWorkersForSQLite, check_concurrency
from tests.provisioning.conftest import Platform, make_platform, make_worker

pytestmark = pytest.mark.postgres


class CountingTarget(GitOpsTarget):
    """A GitOps target that counts applies per (namespace, digest of the stack)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applies: Counter[tuple[str, str]] = Counter()
        self._count_lock = threading.Lock()

    def apply(self, stack: Stack, *, only: set[str] | None = None) -> ApplyReport:
        with self._count_lock:
            self.applies[(stack.namespace, stack.digest)] += 1
        return super().apply(stack, only=only)


@pytest.fixture
def pg_platform(
    postgres_engine: Engine, tmp_path: Path, sealing_dir: Path
) -> tuple[Platform, CountingTarget]:
    config = {"path": str(tmp_path / "tree")}
    platform = make_platform(postgres_engine, kind=TargetKind.GITOPS, config=config)
    target = CountingTarget(
        tmp_path / "tree", name="main", sealer=Sealer.from_pem_file(sealing_dir / "sealing.crt")
    )
    return platform, target


def test_four_workers_apply_each_generation_exactly_once(
    pg_platform: tuple[Platform, CountingTarget],
) -> None:
    p, target = pg_platform
    registry = TargetRegistry(overrides={"main": target})
    tenants = [p.tenant(f"m{i}", f"{30000 + i}") for i in range(20)]
    ids = [p.create(tenants[i % 20], f"svc{i}") for i in range(200)]
    worker = make_worker(p, registry=registry, concurrency=4, batch_size=5)
    worker.start()
    try:
        # Change half of them while the workers run: generation 2 must be applied once too.
        for iid in ids[::2]:
            p.change(iid, plan="large")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(p.get(i).observed_generation == p.get(i).generation for i in ids[::7]) and (
                queueing.pending(p.engine) == 0
            ):
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    worker.run_until_idle()
    with Session(p.engine) as session:
        revisions = session.exec(select(Revision)).all()
    per_generation = Counter((r.instance_id, r.generation) for r in revisions)
    assert max(per_generation.values()) == 1
    for iid in ids:
        instance = p.get(iid)
        assert instance.phase == Phase.COMMITTED
        assert instance.observed_generation == instance.generation
        assert (iid, instance.generation) in per_generation
    # Every distinct rendered stack was applied exactly once.
    assert set(target.applies.values()) == {1}


def test_abandoned_lease_is_taken_over_after_it_expires(
    pg_platform: tuple[Platform, CountingTarget],
) -> None:
    p, target = pg_platform
    iid = p.create(p.tenant("aalst", "41002"), "site")
    crashed = queueing.claim(p.engine, "crashed-worker", lease_seconds=0.5)
    assert [c.instance_id for c in crashed] == [iid]
    worker = make_worker(p, registry=TargetRegistry(overrides={"main": target}))
    assert worker.run_once("other") == 0  # the lease is still live
    time.sleep(0.6)
    assert worker.run_once("other") == 1
    assert p.get(iid).phase == Phase.COMMITTED
    # The crashed worker's late finish writes nothing: its lease is gone.
    with Session(p.engine) as session:
        assert queueing.lock_for_finish(session, crashed[0]) is None


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    from controlplane.db.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TooManyWorkersForSQLite, match="SQLite"):
        check_concurrency(engine, 2)
    check_concurrency(engine, 1)


def test_a_renewal_skips_a_row_locked_right_now_and_reports_a_taken_lease(
    pg_platform: tuple[Platform, CountingTarget],
) -> None:
    p, _target = pg_platform
    tenant = p.tenant("lier", "12021")
    first, second = (p.create(tenant, name) for name in ("one", "two"))
    claims = {c.instance_id: c for c in queueing.claim(p.engine, "w/0", limit=2)}
    with Session(p.engine) as locker:  # a finish (or an enqueue) holds one row's lock
        locker.execute(
            select(ReconcileRequest)
            .where(ReconcileRequest.instance_id == first)  # type: ignore[arg-type]
            .with_for_update()
        ).one()
        # Neither waits for that lock nor calls the lease lost.
        assert queueing.renew_all(p.engine, list(claims.values()), lease_seconds=60) == {}
        locker.rollback()
    with Session(p.engine) as session:
        session.execute(
            update(ReconcileRequest)
            .where(ReconcileRequest.instance_id == second)  # type: ignore[arg-type]
            .values(lease_owner="w/0#someone-else")
        )
        session.commit()
    lost = queueing.renew_all(p.engine, list(claims.values()), lease_seconds=60)
    assert lost == {claims[second].request_id: "w/0#someone-else"}
