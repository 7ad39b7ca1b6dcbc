"""Batched reconciles: one load and one record per batch, GitOps folders built whole.

The batch keeps the per-instance guarantees: a claim whose lease was taken over records
nothing while the rest of its batch is recorded; a new GitOps folder appears in one rename
(no staging folder or temporary file is left, a crashed one is cleaned up); a resync of a
converged batch writes nothing.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from controlplane.provisioning import queueing
from controlplane.provisioning.models import (
    Phase,
    ReconcileRequest,
    Revision,
    UsageEvent,
    UsageKind,
)
from controlplane.provisioning.queueing import Backoff, Claim
from controlplane.provisioning.reconciling import Outcome, Result, Step, _Inserts
from tests.provisioning.conftest import Platform, make_worker


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_ino, st.st_mtime_ns)
    return out


def test_a_lost_lease_records_nothing_while_the_rest_of_the_batch_is_recorded(
    gitops_platform: Platform,
) -> None:
    p = gitops_platform
    tenant = p.tenant("gent", "44021")
    ids = [p.create(tenant, f"app{i}") for i in range(4)]
    worker = make_worker(p, batch_size=10)
    claims = queueing.claim(p.engine, "w/0", limit=10)
    assert len(claims) == 4
    stolen = claims[1]
    with Session(p.engine) as session:  # another worker took this lease over
        session.execute(
            update(ReconcileRequest)
            .where(ReconcileRequest.id == stolen.request_id)  # type: ignore[arg-type]
            .values(lease_owner="other/0")
        )
        session.commit()
    results = worker.reconciler.reconcile_batch(claims)
    outcomes = {r.instance_id: r.outcome for r in results if r is not None}
    assert outcomes[stolen.instance_id] == Outcome.LOST
    assert [outcomes[i] for i in ids if i != stolen.instance_id] == [Outcome.APPLIED] * 3
    with Session(p.engine) as session:
        revised = {r.instance_id for r in session.exec(select(Revision)).all()}
    assert revised == set(ids) - {stolen.instance_id}
    assert p.get(stolen.instance_id).phase == Phase.PENDING


def test_new_folders_appear_whole_and_a_crashed_staging_folder_is_removed(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    tenant = p.tenant("mol", "13017")
    first = p.create(tenant, "site")
    worker = make_worker(p)
    worker.run_until_idle()
    tenant_dir = tmp_path / "tree" / "mol"
    # The instance folder and the tenant's listing of its folders, nothing half-written.
    assert sorted(e.name for e in tenant_dir.iterdir()) == ["kustomization.yaml", "site"]
    assert not [n for n in os.listdir(tenant_dir / "site") if n.endswith(".tmp")]
    # A crash between creating the staging folder and renaming it leaves it behind.
    leftover = tenant_dir / ".site.abc123.tmp"
    leftover.mkdir()
    (leftover / "01-namespace-x.yaml").write_text("half")
    p.change(first, plan="large")
    worker.run_until_idle()
    assert not leftover.exists()
    assert p.get(first).phase == Phase.COMMITTED


def test_resync_of_a_converged_batch_writes_nothing_and_repairs_drift(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    tenants = [p.tenant(f"t{i}", f"{20000 + i}") for i in range(3)]
    for tenant in tenants:
        p.create(tenant, "one")
        p.create(tenant, "two", version="2.0.0")
    worker = make_worker(p, batch_size=4)
    worker.run_until_idle()
    root = tmp_path / "tree"
    before = _tree_state(root)
    p.make_all_due()
    worker.run_until_idle()
    assert _tree_state(root) == before
    assert worker.counts[Outcome.UNCHANGED] == 6
    edited = next(k for k in sorted(before) if not k.endswith("kustomization.yaml"))
    Path(edited).write_text(Path(edited).read_text() + "# hand edit\n")
    p.make_all_due()
    worker.run_until_idle()
    assert worker.counts[Outcome.REPAIRED] == 1
    assert "# hand edit" not in Path(edited).read_text()


def test_a_batch_numbers_each_instances_revision_after_its_own_last(
    gitops_platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    # The batch reads every instance's last revision number in one query: an instance with
    # history continues its own numbering, a new one starts at 1, none takes another's.
    p = gitops_platform
    tenant = p.tenant("lier", "12021")
    old, new = p.create(tenant, "old"), p.create(tenant, "new")
    worker = make_worker(p, batch_size=10)
    worker.run_until_idle()
    p.change(old, plan="large")
    worker.run_until_idle()
    p.change(old, plan="small")
    late = p.create(tenant, "late")
    p.change(new, plan="large")
    assert worker.run_once("w/0") == 3  # one batch: old (3rd), new (2nd), late (1st)
    # Recorded as one batch (a wrong number would fail it, and each would be recorded alone).
    assert "recording a batch failed" not in caplog.text
    with Session(p.engine) as session:
        numbers: dict[object, list[int]] = {}
        for revision in session.exec(select(Revision).order_by(Revision.number)).all():
            numbers.setdefault(revision.instance_id, []).append(revision.number)
    assert numbers == {old: [1, 2, 3], new: [1, 2], late: [1]}
    assert [p.get(i).current_revision for i in (old, new, late)] == [3, 2, 1]


def test_a_crash_in_one_reconcile_keeps_its_lease_and_records_the_others(
    gitops_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = gitops_platform
    tenant = p.tenant("geel", "13008")
    ids = [p.create(tenant, f"app{i}") for i in range(3)]
    worker = make_worker(p, batch_size=10)
    real = worker.reconciler._converge

    def converge(held: Claim, loaded: Any, target: Any) -> Any:
        if held.instance_id == ids[0]:
            raise RuntimeError("a bug")
        return real(held, loaded, target)

    monkeypatch.setattr(worker.reconciler, "_converge", converge)
    assert worker.run_once("w/0") == 3
    assert worker.counts[Outcome.APPLIED] == 2
    assert worker.counts[Outcome.LOST] == 1
    assert p.get(ids[0]).phase == Phase.PENDING
    with Session(p.engine) as session:
        request = session.exec(
            select(ReconcileRequest).where(ReconcileRequest.instance_id == ids[0])
        ).one()
    # Still held by w/0 (its per-claim lease holder): retried when the lease expires, not at once.
    assert (request.lease_owner or "").startswith("w/0#")


def test_render_processes_render_exactly_what_the_in_process_render_does(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    """A batch rendered in child processes; the same inputs rendered again in-process
    (a new generation, nothing else changed) find every object's digest equal: nothing is
    written. A render error in a child reads as it does in-process."""
    p = gitops_platform
    tenants = [p.tenant(f"t{i}", f"{30000 + i}") for i in range(3)]
    ids = []
    for tenant in tenants:
        ids.append(p.create(tenant, "one", parameters={"greeting": tenant.slug}))
        ids.append(p.create(tenant, "two", version="2.0.0", plan="large"))
    bad = p.create(tenants[0], "bad", parameters={"colour": "red"})  # not in the schema
    pooled = make_worker(p, batch_size=20, render_processes=2)
    try:
        pooled.run_until_idle()
        assert pooled.rendered_in_children == 6
    finally:
        pooled.stop()
    assert pooled.counts[Outcome.APPLIED] == 6
    assert [p.get(i).phase for i in ids] == [Phase.COMMITTED] * 6
    failed = p.get(bad)
    assert failed.phase == Phase.FAILED
    assert "colour" in (failed.message or "")
    before = _tree_state(tmp_path / "tree")
    for instance_id in [*ids, bad]:
        p.change(instance_id)
    results = []
    in_process = make_worker(p, batch_size=20, on_result=results.append)
    in_process.run_until_idle()
    assert {r.outcome for r in results if r.instance_id != bad} == {Outcome.APPLIED}
    assert [r.written for r in results if r.instance_id != bad] == [0] * 6
    assert _tree_state(tmp_path / "tree") == before
    assert p.get(bad).message == failed.message
    # The files written from the children's YAML are the bytes the worker writes itself
    # (SealedSecrets aside: every sealing is new ciphertext).
    pooled_files = _unsealed_files(tmp_path / "tree")
    shutil.rmtree(tmp_path / "tree")
    for instance_id in ids:
        p.change(instance_id)
    in_process.run_until_idle()
    assert _unsealed_files(tmp_path / "tree") == pooled_files
    assert len(pooled_files) > 6 * 3


def _unsealed_files(root: Path) -> dict[str, bytes]:
    files = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*.yaml")}
    return {name: data for name, data in files.items() if b"kind: SealedSecret" not in data}


def _lease_owner(p: Platform, held: Claim, owner: str) -> None:
    with Session(p.engine) as session:
        session.execute(
            update(ReconcileRequest)
            .where(ReconcileRequest.id == held.request_id)  # type: ignore[arg-type]
            .values(lease_owner=owner)
        )
        session.commit()


def test_a_step_is_plain_data_recorded_by_one_function_only_under_its_lease(
    gitops_platform: Platform,
) -> None:
    p = gitops_platform
    tenant = p.tenant("aalst", "41002")
    first, second = p.create(tenant, "one"), p.create(tenant, "two")
    reconciler = make_worker(p).reconciler
    claims = {c.instance_id: c for c in queueing.claim(p.engine, "w/0", limit=10)}
    failed = Step(
        claims[first],
        Outcome.FAILED,
        1,
        phase=Phase.FAILED,
        conditions={"Ready": (False, "RenderFailed", "bad input")},
        message="bad input",
        backoff=Backoff(base=60.0, cap=60.0),
        failed=True,
    )
    deleted = Step(
        claims[second],
        Outcome.DELETED,
        1,
        phase=Phase.DELETED,
        usage=(UsageKind.STOPPED,),
        deleted=True,
    )
    _lease_owner(p, claims[first], "other/0")  # another worker took this lease over
    with Session(p.engine, expire_on_commit=False) as session:
        inserts = _Inserts()
        assert reconciler._record(session, failed, inserts) == Result(Outcome.LOST, first, 1)
        assert reconciler._record(session, deleted, inserts) == Result(Outcome.DELETED, second, 1)
        inserts.write(session)
        session.commit()
    assert p.get(first).phase == Phase.PENDING
    gone = p.get(second)
    assert (gone.phase, gone.deleted_at is not None) == (Phase.DELETED, True)
    with Session(p.engine) as session:
        # Never started (no applied revision): not billed, so no ``stopped`` either.
        assert session.exec(select(UsageEvent)).all() == []
        assert [r.instance_id for r in session.exec(select(ReconcileRequest)).all()] == [first]
    # The same record, once the lease is this worker's again, is written whole.
    _lease_owner(p, claims[first], claims[first].owner)
    with Session(p.engine, expire_on_commit=False) as session:
        result = reconciler._record(session, failed, _Inserts())
        session.commit()
    assert result == Result(Outcome.FAILED, first, 1, message="bad input")
    row = p.get(first)
    assert (row.phase, row.message, row.observed_generation) == (Phase.FAILED, "bad input", 1)
    with Session(p.engine) as session:
        request = session.exec(
            select(ReconcileRequest).where(ReconcileRequest.instance_id == first)
        ).one()
    assert (request.lease_owner, request.attempts, request.reason) == (None, 1, "retry")


def test_a_worker_renders_in_one_process_per_cpu_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controlplane import settings
    from controlplane.settings import Settings

    monkeypatch.setattr(settings, "CGROUP_CPU_MAX", Path("/nonexistent/cpu.max"))  # no limit
    monkeypatch.delenv("CONTROLPLANE_RENDER_PROCESSES", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert Settings().resolved_render_processes() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert Settings().resolved_render_processes() == 0  # one CPU: render in the worker
    monkeypatch.setenv("CONTROLPLANE_RENDER_PROCESSES", "0")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert Settings().resolved_render_processes() == 0


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", 8), ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1)],
)
def test_a_containers_cpu_limit_bounds_the_render_processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpu_max: str, expected: int
) -> None:
    # A pod limited to 2 CPUs on an 8-core node sees 8 CPUs in its affinity.
    from controlplane import settings

    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    monkeypatch.setattr(settings, "CGROUP_CPU_MAX", limit)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert settings.usable_cpus() == expected


def _leased(p: Platform) -> set[object]:
    with Session(p.engine) as session:
        requests = session.exec(select(ReconcileRequest)).all()
    return {r.instance_id for r in requests if r.lease_owner is not None}


def test_with_render_processes_a_full_batch_claims_the_next_while_it_works(
    gitops_platform: Platform,
) -> None:
    """The render processes render the next two batches while the worker writes and
    records this one; every instance is reconciled once, a short batch ends the claiming
    ahead, and a stop gives the batches claimed ahead back untouched."""
    p = gitops_platform
    tenant = p.tenant("aalst", "41002")
    ids = [p.create(tenant, f"app{i}") for i in range(10)]
    worker = make_worker(p, batch_size=3, render_processes=2)
    try:
        assert worker.run_once() == 3
        ahead = _leased(p)  # the next two full batches, claimed and rendering
        assert len(ahead) == 6
        assert all(p.get(i).phase == Phase.PENDING for i in ahead)
        assert worker.run_once() == 3  # the first batch claimed ahead, which claimed the last
        assert len(_leased(p)) == 4
        assert worker.run_once() == 3  # nothing more to claim: the last batch came back short
        assert len(_leased(p)) == 1
        assert worker.run_until_idle() == 1
        assert worker.rendered_in_children == 9  # a batch of one renders in the worker
    finally:
        worker.stop()
    assert worker.counts[Outcome.APPLIED] == 10
    assert [p.get(i).phase for i in ids] == [Phase.COMMITTED] * 10
    assert _leased(p) == set()

    # A stop between two batches releases those claimed ahead: nothing stays leased.
    for instance_id in ids:
        p.change(instance_id)
    stopping = make_worker(p, batch_size=3, render_processes=2)
    try:
        assert stopping.run_once() == 3
        assert len(_leased(p)) == 6
    finally:
        stopping.stop()
    assert _leased(p) == set()
    # Not started: their generation is still to be reconciled, by any worker.
    assert sum(p.get(i).observed_generation != p.get(i).generation for i in ids) == 7


def test_with_render_processes_the_worker_writes_the_files_in_its_own_thread(
    gitops_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads creating files beside each other cost 2-4 times the CPU per file of one; with
    the renders in child processes nothing is left for them to overlap."""
    from controlplane.provisioning.targets.gitops import GitOpsTarget

    p = gitops_platform
    tenant = p.tenant("ieper", "33011")
    for i in range(4):
        p.create(tenant, f"app{i}")
    threads: list[str] = []
    apply = GitOpsTarget.apply

    def recording(self: GitOpsTarget, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(GitOpsTarget, "apply", recording)
    worker = make_worker(p, batch_size=4, render_processes=2)
    try:
        assert worker.run_until_idle() == 4
        assert worker.rendered_in_children == 4
    finally:
        worker.stop()
    assert threads == [threading.current_thread().name] * 4


def test_a_failing_claim_ahead_does_not_fail_the_batch_under_way(
    gitops_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claiming the next batch ahead is a head start only: if the database refuses it, the
    batch under way is still written and recorded, and the next batch is claimed later."""
    p = gitops_platform
    tenant = p.tenant("lier", "12021")
    ids = [p.create(tenant, f"app{i}") for i in range(6)]
    claim = queueing.claim
    calls: list[int] = []

    def failing_second(*args: Any, **kwargs: Any) -> list[Claim]:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("database went away")
        return claim(*args, **kwargs)

    monkeypatch.setattr(queueing, "claim", failing_second)
    worker = make_worker(p, batch_size=3, render_processes=2)
    try:
        assert worker.run_once() == 3
        assert len(calls) == 2  # the claim ahead was tried, and failed
        assert worker.run_until_idle() == 3
    finally:
        worker.stop()
    assert [p.get(i).phase for i in ids] == [Phase.COMMITTED] * 6
