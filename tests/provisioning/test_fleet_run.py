"""Fleet runs on the real cluster, through the real reconciler and worker: waves,
concurrency, the failure threshold with rollback, resume, pause, cancel, and a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from controlplane.auth.audit import AuditContext
from controlplane.auth.models import AuditEvent
from controlplane.db.engine import make_engine
from controlplane.provisioning import fleet
from controlplane.provisioning.fleet.models import ItemState, RunStatus
from controlplane.provisioning.models import Phase, Revision
from tests.cluster.fixtures import Cluster, cluster  # noqa: F401
from tests.provisioning.fleet_support import SERVICE, FleetWorld, make_world

OPERATOR = AuditContext(actor="operator-test", request_id="req-1")


@pytest.fixture
def world(tmp_path: Path, cluster: Cluster) -> Iterator[FleetWorld]:  # noqa: F811
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    world = make_world(engine, cluster)
    yield world
    world.clean_up()
    engine.dispose()


def _populate(
    w: FleetWorld, tenants: int, per_tenant: int, *, broken: frozenset[str] = frozenset()
) -> dict[str, uuid.UUID]:
    """Instances keyed by namespace; those named in ``broken`` cannot run 2.0.0's pods."""
    ids: dict[str, uuid.UUID] = {}
    for t in range(tenants):
        tenant = w.tenant(f"t{t}")
        for i in range(per_tenant):
            namespace = f"{tenant.slug}-app{i}"
            parameters = {"pool": "none"} if namespace in broken else None
            ids[namespace] = w.instance(tenant, f"app{i}", parameters=parameters)
    w.converge()
    for namespace, iid in ids.items():
        assert w.get(iid).phase == Phase.READY, namespace
    return ids


def _plan_and_start(w: FleetWorld, **settings: object) -> uuid.UUID:
    request = fleet.PlanRequest(
        service=SERVICE, from_range=">=1.0.0,<2.0.0", to_version="2.0.0", **settings
    )  # type: ignore[arg-type]
    with Session(w.engine, expire_on_commit=False) as session:
        plan = fleet.create_plan(
            session, request=request, renderer_for=w.renderer_for, context=OPERATOR
        )
        run = fleet.start_run(session, plan=plan, context=OPERATOR, now=w.clock.now)
        session.commit()
        return run.id


def _drive(w: FleetWorld, run_id: uuid.UUID, *, until: set[RunStatus], steps: int = 200) -> None:
    for _ in range(steps):
        w.step(10)
        if w.run(run_id).status in until:
            return
    raise AssertionError(f"run still {w.run(run_id).status} after {steps} steps")


def _operator(w: FleetWorld, run_id: uuid.UUID, action: str) -> None:
    with Session(w.engine, expire_on_commit=False) as session:
        run = fleet.get_run(session, run_id, lock=True)
        getattr(fleet, f"{action}_run")(session, run, context=OPERATOR, now=w.clock.now)
        session.commit()


def _versions(w: FleetWorld, iid: uuid.UUID) -> tuple[str, str, Phase]:
    """Desired version, the version of the applied revision, and the phase."""
    instance = w.get(iid)
    with Session(w.engine) as session:
        applied = session.exec(
            select(Revision).where(
                Revision.instance_id == iid, Revision.number == instance.current_revision
            )
        ).one()
    assert instance.observed_generation == instance.generation
    return instance.version, applied.version, instance.phase


def test_twenty_instances_upgrade_in_waves_of_five(world: FleetWorld) -> None:
    w = world
    ids = _populate(w, tenants=2, per_tenant=10)
    run_id = _plan_and_start(w, wave_size=5, max_concurrency=3, pause_seconds=30)
    most_in_flight = 0
    for _ in range(300):
        w.tick()
        items = w.items(run_id)
        in_flight = [i for i in items if i.state == ItemState.UPGRADING]
        most_in_flight = max(most_in_flight, len(in_flight))
        # Never two waves at once: everything in flight belongs to the run's current wave.
        assert {i.wave for i in in_flight} <= {w.run(run_id).wave}
        w.converge()
        w.clock.advance(10)
        if w.run(run_id).status == RunStatus.SUCCEEDED:
            break
    run = w.run(run_id)
    assert run.status == RunStatus.SUCCEEDED, run.report
    assert most_in_flight == 3
    items = w.items(run_id)
    assert [i.wave for i in items] == [n // 5 for n in range(20)]
    assert {i.state for i in items} == {ItemState.SUCCEEDED}
    # Wave n+1 starts only after wave n is through and the pause has passed.
    for wave in range(1, 4):
        ended = max(i.finished_at for i in items if i.wave == wave - 1 and i.finished_at)
        started = min(i.started_at for i in items if i.wave == wave and i.started_at)
        assert (started - ended).total_seconds() >= 30
    for namespace, iid in ids.items():
        assert _versions(w, iid) == ("2.0.0", "2.0.0", Phase.READY)
        assert w.live("Deployment", "web", namespace) is not None
    assert run.report["counts"]["succeeded"] == 20
    with Session(w.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("fleet.instance.upgrade") == 20
    assert actions.count("fleet.instance.succeeded") == 20
    assert actions.count("fleet.wave.start") == 3
    assert {"fleet.plan.create", "fleet.run.start", "fleet.run.finish"} <= set(actions)


def test_failure_stops_the_run_rolls_back_and_resume_continues(world: FleetWorld) -> None:
    w = world
    broken = f"{w.slug('t0')}-app7"  # in wave 1
    ids = _populate(w, tenants=2, per_tenant=10, broken=frozenset({broken}))
    run_id = _plan_and_start(
        w, wave_size=5, max_concurrency=3, failure_threshold="1", instance_timeout_seconds=60
    )
    _drive(w, run_id, until={RunStatus.STOPPED})
    # The stop lets in-flight upgrades finish and the rollback complete.
    for _ in range(30):
        w.step(10)
    run = w.run(run_id)
    assert run.status == RunStatus.STOPPED
    assert run.report["failures"][0]["instance"] == "app7"
    assert run.report["failures"][0]["tenant"] == w.slug("t0")
    # The failed rollout is reported as such (not as a timeout), naming the workload.
    message = run.report["failures"][0]["message"]
    assert "Deployment/web" in message
    assert "rollout failed" in message
    items = {f"{i.tenant}-{i.instance}": i for i in w.items(run_id)}
    assert items[broken].state == ItemState.ROLLED_BACK
    assert _versions(w, ids[broken]) == ("1.0.0", "1.0.0", Phase.READY)
    assert w.live("Deployment", "web", broken) is None  # pruned by the rollback
    with Session(w.engine) as session:
        last = session.exec(
            select(Revision)
            .where(Revision.instance_id == ids[broken])
            .order_by(Revision.number.desc())  # type: ignore[attr-defined]
        ).first()
    assert last is not None
    assert last.rollback_of == 1
    # Nothing of the next wave started; the broken instance's wave-mates finished.
    assert all(i.state == ItemState.PENDING for i in items.values() if i.wave == 2)
    assert all(i.state == ItemState.SUCCEEDED for i in items.values() if i.wave == 0)
    stopped_at = {k: i.state for k, i in items.items()}

    # More ticks while stopped start nothing.
    for _ in range(3):
        w.step(10)
    assert {f"{i.tenant}-{i.instance}": i.state for i in w.items(run_id)} == stopped_at

    _operator(w, run_id, "resume")
    _drive(w, run_id, until={RunStatus.COMPLETED, RunStatus.SUCCEEDED})
    run = w.run(run_id)
    assert run.status == RunStatus.COMPLETED  # done, with one failure (rolled back)
    for namespace, iid in ids.items():
        expected = "1.0.0" if namespace == broken else "2.0.0"
        assert _versions(w, iid) == (expected, expected, Phase.READY)
    with Session(w.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    for action in ("fleet.run.stop", "fleet.run.resume", "fleet.instance.rollback"):
        assert action in actions


def test_cancel_leaves_every_instance_on_the_old_or_the_new_version(world: FleetWorld) -> None:
    w = world
    ids = _populate(w, tenants=2, per_tenant=10)
    run_id = _plan_and_start(w, wave_size=5, max_concurrency=3)
    # Let the run get going, then cancel while upgrades are in flight (recorded, not applied).
    w.step(10)
    w.step(10)
    w.tick()
    in_flight = [i for i in w.items(run_id) if i.state == ItemState.UPGRADING]
    assert in_flight, "the test needs upgrades in flight when cancelling"
    _operator(w, run_id, "cancel")
    assert w.run(run_id).status == RunStatus.CANCELLING
    _drive(w, run_id, until={RunStatus.CANCELLED})
    items = w.items(run_id)
    states = {i.state for i in items}
    assert states <= {ItemState.SUCCEEDED, ItemState.CANCELLED}
    assert ItemState.CANCELLED in states
    # The in-flight ones were finished, not abandoned.
    finished = {i.instance_id for i in items if i.state == ItemState.SUCCEEDED}
    assert {i.instance_id for i in in_flight} <= finished
    for iid in ids.values():
        desired, applied, phase = _versions(w, iid)
        assert desired == applied
        assert desired == ("2.0.0" if iid in finished else "1.0.0")
        assert phase == Phase.READY
    run = w.run(run_id)
    assert run.report["counts"]["cancelled"] == sum(1 for i in items if i.state == "cancelled")
    # A cancelled run takes no operator action any more, except cancel (idempotent).
    _operator(w, run_id, "cancel")
    with pytest.raises(fleet.FleetRunConflict):
        _operator(w, run_id, "resume")


def test_pause_starts_nothing_new_and_a_restart_loses_nothing(
    world: FleetWorld,
    tmp_path: Path,
    cluster: Cluster,  # noqa: F811
) -> None:
    w = world
    _populate(w, tenants=1, per_tenant=6)
    run_id = _plan_and_start(w, wave_size=6, max_concurrency=2)
    w.step(10)
    _operator(w, run_id, "pause")
    for _ in range(5):
        w.step(10)
    items = w.items(run_id)
    assert w.run(run_id).status == RunStatus.PAUSED
    assert sum(1 for i in items if i.state == ItemState.SUCCEEDED) == 2
    assert sum(1 for i in items if i.state == ItemState.PENDING) == 4

    # "Restart": a new engine and a new worker on the same database and cluster.
    w.worker.stop()
    w.engine.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    again = make_world(engine, cluster, fresh=False)
    again.clock = w.clock
    _operator(again, run_id, "resume")
    _drive(again, run_id, until={RunStatus.SUCCEEDED})
    assert {i.state for i in again.items(run_id)} == {ItemState.SUCCEEDED}


def test_a_second_run_of_the_same_service_waits(world: FleetWorld) -> None:
    w = world
    _populate(w, tenants=1, per_tenant=2)
    _plan_and_start(w)
    with pytest.raises(fleet.FleetRunConflict, match="still running"):
        _plan_and_start(w)
