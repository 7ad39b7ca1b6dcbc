"""Maintenance windows (Europe/Brussels) with an injected clock: the rules, and a run in
which one tenant's instances wait until its window opens while the others go ahead."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from controlplane.auth.audit import AuditContext
from controlplane.db.engine import make_engine
from controlplane.provisioning import fleet
from controlplane.provisioning.fleet.models import ItemState, RunStatus
from tests.cluster.fixtures import Cluster, cluster  # noqa: F401
from tests.provisioning.fleet_support import SATURDAY_NOON, SERVICE, FleetWorld, make_world

NIGHTS = {"days": ["sat"], "start": "22:00", "end": "06:00"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "moment", "open_"),
    [
        ({}, utc(2025, 1, 8, 12, 0), True),  # no window: any time
        (NIGHTS, utc(2025, 1, 4, 20, 59), False),  # Sat 21:59 Brussels (UTC+1)
        (NIGHTS, utc(2025, 1, 4, 21, 0), True),  # Sat 22:00
        (NIGHTS, utc(2025, 1, 5, 4, 59), True),  # Sun 05:59: the Saturday window goes on
        (NIGHTS, utc(2025, 1, 5, 5, 0), False),  # Sun 06:00: closed
        (NIGHTS, utc(2025, 1, 5, 21, 30), False),  # Sun 22:30: not a window day
        (NIGHTS, utc(2025, 7, 5, 20, 0), True),  # summer time: Sat 22:00 is 20:00 UTC
        (NIGHTS, utc(2025, 7, 5, 19, 59), False),
        ({"days": [], "start": "01:00", "end": "05:00"}, utc(2025, 1, 7, 1, 0), True),
        ({"days": ["tue"], "start": "09:00", "end": "09:00"}, utc(2025, 1, 7, 23, 30), False),
        ({"days": ["tue"], "start": "09:00", "end": "09:00"}, utc(2025, 1, 7, 22, 30), True),
    ],
)
def test_window_rules(window: dict[str, object], moment: datetime, open_: bool) -> None:
    assert fleet.window_open(window, moment) is open_


def test_next_opening_is_the_coming_start() -> None:
    opens = fleet.next_opening(NIGHTS, SATURDAY_NOON)
    assert opens is not None
    assert opens.astimezone(UTC) == utc(2025, 1, 4, 21, 0)
    assert fleet.next_opening({}, SATURDAY_NOON) == SATURDAY_NOON


@pytest.fixture
def world(tmp_path: Path, cluster: Cluster) -> Iterator[FleetWorld]:  # noqa: F811
    engine = make_engine(f"sqlite:///{tmp_path / 'cp.db'}")
    world = make_world(engine, cluster)
    yield world
    world.clean_up()
    engine.dispose()


def test_an_instance_outside_its_window_waits_while_the_run_goes_on(world: FleetWorld) -> None:
    w = world
    anytime = w.tenant("anytime")
    nightly = w.tenant("nightly", NIGHTS)
    # Plan order (tenant, name) with waves of 2: [aa-nightly/a, anytime/b], [anytime/c,
    # nightly/d]: wave 1 must not wait for the waiting instance of wave 0.
    early = w.tenant("aa-nightly", NIGHTS)
    ids = {
        "aa-nightly/a": w.instance(early, "a"),
        "anytime/b": w.instance(anytime, "b"),
        "anytime/c": w.instance(anytime, "c"),
        "nightly/d": w.instance(nightly, "d"),
    }
    w.converge()
    with Session(w.engine, expire_on_commit=False) as session:
        plan = fleet.create_plan(
            session,
            request=fleet.PlanRequest(
                service=SERVICE, from_range="<2.0.0", to_version="2.0.0", wave_size=2
            ),
            renderer_for=w.renderer_for,
            context=AuditContext(actor="operator-test"),
        )
        run = fleet.start_run(
            session, plan=plan, context=AuditContext(actor="operator-test"), now=w.clock.now
        )
        session.commit()
    # Saturday afternoon: the windowed tenants wait, the others are upgraded.
    for _ in range(30):
        w.step(60)  # a minute per step: 13:00 → 13:30 Brussels
    items = {f"{i.tenant.removesuffix('-' + w.suffix)}/{i.instance}": i for i in w.items(run.id)}
    assert items["anytime/b"].state == ItemState.SUCCEEDED
    assert items["anytime/c"].state == ItemState.SUCCEEDED
    for key in ("aa-nightly/a", "nightly/d"):
        assert items[key].state == ItemState.SKIPPED_WINDOW
        assert "Sat 2025-01-04 22:00" in (items[key].message or "")
        assert w.get(ids[key]).version == "1.0.0"  # not touched at all
    assert w.run(run.id).status == RunStatus.RUNNING

    # Move the clock to 21:58 Brussels: still closed.
    w.clock.now = utc(2025, 1, 4, 20, 58)
    w.step(60)
    assert {i.state for i in w.items(run.id) if i.tenant != w.slug("anytime")} == {
        ItemState.SKIPPED_WINDOW
    }
    # 22:00: the window opens, they are upgraded.
    w.clock.now = utc(2025, 1, 4, 21, 0)
    for _ in range(10):
        w.step(60)
        if w.run(run.id).status == RunStatus.SUCCEEDED:
            break
    assert w.run(run.id).status == RunStatus.SUCCEEDED
    for item in w.items(run.id):
        assert item.state == ItemState.SUCCEEDED
        if item.tenant != w.slug("anytime"):
            assert item.started_at is not None
            assert item.started_at >= utc(2025, 1, 4, 21, 0)
    for iid in ids.values():
        assert w.get(iid).version == "2.0.0"


def test_ignore_maintenance_windows(world: FleetWorld) -> None:
    w = world
    nightly = w.tenant("nightly", NIGHTS)
    iid = w.instance(nightly, "d")
    w.converge()
    with Session(w.engine, expire_on_commit=False) as session:
        plan = fleet.create_plan(
            session,
            request=fleet.PlanRequest(
                service=SERVICE,
                from_range="<2.0.0",
                to_version="2.0.0",
                ignore_maintenance_windows=True,
            ),
            renderer_for=w.renderer_for,
            context=AuditContext(actor="operator-test"),
        )
        run = fleet.start_run(
            session, plan=plan, context=AuditContext(actor="operator-test"), now=w.clock.now
        )
        session.commit()
    for _ in range(5):
        w.step(10)
    assert w.run(run.id).status == RunStatus.SUCCEEDED
    assert w.get(iid).version == "2.0.0"
