"""`cityctl fleet` for someone new to it (issue 14): short ids and unique prefixes like git,
`fleet status --watch`, waves counted from 1 in headers and tables alike, and a --help
whose option names fit 80 columns.

Against the real API served on loopback with its embedded worker (tests/cli/conftest.py):
the fleet executor upgrades instances on the embedded GitOps target.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from cli.main import app
from controlplane.auth.models import Role
from controlplane.catalog.publishing import publish_release
from controlplane.provisioning.fleet.models import FleetPlan
from controlplane.tenants.models import Tenant
from tests.cli.conftest import Platform
from tests.provisioning.fleet_support import shop_release

FLEET_COMMANDS = (
    "plan",
    "plans",
    "show-plan",
    "preview",
    "run",
    "runs",
    "status",
    "pause",
    "resume",
    "cancel",
)


def _wait(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _rows(table: str, header: str) -> list[list[str]]:
    """The rows under the table header line starting with ``header``, split on blanks."""
    lines = table.splitlines()
    start = next(n for n, line in enumerate(lines) if line.split()[:1] == [header])
    rows = [line.split() for line in lines[start + 1 :] if line.strip()]
    return [row for row in rows if row[0] != "run"]  # not the "run it with:" line


@pytest.fixture(scope="module")
def operator(platform: Platform) -> str:
    """Shop 1.0.0 and 2.0.0, tenant gent with two Ready shop 1.0.0 instances (a, b)."""
    with Session(platform.engine) as session:
        for version in ("1.0.0", "2.0.0"):
            publish_release(session, shop_release(version))
        session.add(Tenant(slug="gent", name="Gent", nis_code="44021"))
        session.commit()
    token = platform.issue_token(Role.OPERATOR, "fleet-newcomer")
    for name in ("a", "b"):
        platform.ok(
            "instance", "create", name, "--tenant", "gent", "--service", "shop",
            "--version", "1.0.0", "--plan", "small", token=token,
        )  # fmt: skip

    def ready() -> bool:
        items = platform.json("instance", "list", "--tenant", "gent", token=token)
        return all(i["status"]["phase"] == i["settles_at"] for i in items)

    _wait(ready, "the instances to be Ready")
    return token


@pytest.mark.parametrize("command", FLEET_COMMANDS)
def test_help_shows_whole_option_names_at_80_columns(command: str) -> None:
    result = CliRunner().invoke(
        app, ["fleet", command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"}
    )
    assert result.exit_code == 0, result.output
    names = re.findall(r"│\s*\*?\s*(-[-\w]+)", result.stdout)
    assert names, result.stdout
    cut = [name for name in names if name.endswith("…")]
    assert not cut, result.stdout
    if command == "plan":
        for name in ("--max-concurrency", "--failure-threshold", "--ignore-windows"):
            assert name in names, result.stdout
    if command == "status":
        assert {"--watch", "--interval", "--timeout"} <= set(names), result.stdout


def test_short_ids_prefixes_and_waves_numbered_from_one(platform: Platform, operator: str) -> None:
    p, token = platform, operator
    made = p.ok(
        "fleet", "plan", "-s", "shop", "--from", "<2.0.0", "--to", "2.0.0",
        "--wave-size", "1", "--pause", "3600", token=token,
    ).stdout  # fmt: skip
    plan_id = p.json("fleet", "plans", token=token)[0]["id"]
    assert plan_id not in made
    assert made.startswith(f"plan {plan_id[:8]}: shop <2.0.0 → 2.0.0, 2 instance(s) in 2 wave(s)")
    assert f"run it with: cityctl fleet run {plan_id[:8]}" in made
    assert [row[0] for row in _rows(made, "WAVE")] == ["1", "2"]

    listed = p.ok("fleet", "plans", token=token).stdout
    assert plan_id not in listed
    assert _rows(listed, "PLAN")[0][0] == plan_id[:8]
    shown = p.ok("fleet", "show-plan", plan_id[:5], token=token).stdout
    assert [row[:3] for row in _rows(shown, "WAVE")] == [["1", "gent", "a"], ["2", "gent", "b"]]
    preview = p.json("fleet", "preview", plan_id[:4], "gent/a", token=token)
    assert preview["changes"]["added"] == ["apps/v1/Deployment/web"]

    started = p.ok("fleet", "run", plan_id[:8], token=token).stdout
    run_id = p.json("fleet", "runs", token=token)[0]["id"]
    assert started.startswith(f"run {run_id[:8]}: running (wave 1/2)")
    assert [row[:3] for row in _rows(started, "WAVE")] == [["1", "gent", "a"], ["2", "gent", "b"]]
    # JSON keeps the API's 0-based waves.
    assert [w["wave"] for w in p.json("fleet", "status", run_id[:8], token=token)["waves"]] == [
        0,
        1,
    ]

    # Wave 1 done, the run sits out its hour-long pause before wave 2.
    _wait(
        lambda: p.json("fleet", "status", run_id, token=token)["counts"].get("succeeded") == 1,
        "wave 1 to succeed",
    )
    runs = p.ok("fleet", "runs", token=token).stdout
    assert run_id not in runs
    assert _rows(runs, "RUN")[0][:3] == [run_id[:8], plan_id[:8], "running"]

    gave_up = p.run(
        "fleet", "status", run_id[:6], "--watch", "--interval", "0.2", "--timeout", "1",
        token=token,
    )  # fmt: skip
    assert gave_up.exit_code == 7, (gave_up.stdout, gave_up.stderr)
    assert f"run {run_id[:8]} is running" in gave_up.stderr
    assert f"cityctl fleet status {run_id[:8]} --watch" in gave_up.stderr

    cancelled = p.ok("fleet", "cancel", run_id[:8], token=token).stdout
    assert cancelled.startswith(f"run {run_id[:8]}: cancel")
    watched = p.run("fleet", "status", run_id[:8], "--watch", "--interval", "0.2", token=token)
    assert watched.exit_code == 1, (watched.stdout, watched.stderr)
    assert watched.stdout.startswith(f"run {run_id[:8]}: cancelled")
    assert f"Run {run_id[:8]} was cancelled" in watched.stderr


def test_watch_follows_a_run_until_it_succeeded(platform: Platform, operator: str) -> None:
    p, token = platform, operator
    plan = p.json("fleet", "plan", "-s", "shop", "--from", "<2.0.0", "--to", "2.0.0", token=token)
    assert [i["instance"] for i in plan["items"]] == ["b"]
    run = p.json("fleet", "run", plan["id"][:8], token=token)
    watched = p.run("fleet", "status", run["id"][:8], "--watch", "--interval", "0.2", token=token)
    assert watched.exit_code == 0, (watched.stdout, watched.stderr)
    assert watched.stdout.startswith(f"run {run['id'][:8]}: succeeded (wave 1/1)")
    # Progress on stderr, one line per change, ending at the final state.
    progress = [line for line in watched.stderr.splitlines() if line.startswith("run ")]
    assert progress[-1].startswith(f"run {run['id'][:8]}: succeeded")
    as_json = p.run("fleet", "status", run["id"][:8], "-w", "-o", "json", token=token)
    assert as_json.exit_code == 0
    assert as_json.stdout.lstrip().startswith("{")
    for item in p.json("instance", "list", "--tenant", "gent", token=token):
        assert item["version"] == "2.0.0"


def _plan_row(plan_id: uuid.UUID) -> FleetPlan:
    return FleetPlan(
        id=plan_id,
        service="shop",
        from_range="<2.0.0",
        to_version="2.0.0",
        wave_size=1,
        max_concurrency=1,
        pause_seconds=0,
        failure_threshold="1",
        ignore_maintenance_windows=False,
        instance_timeout_seconds=60,
        created_by="test",
    )


def test_a_prefix_must_be_long_known_and_unique(platform: Platform, operator: str) -> None:
    p, token = platform, operator
    # Two plans whose ids share 35 characters: made in the database, as chance would
    # need thousands of plans to give two the same first eight digits.
    twins = [uuid.UUID(f"abcdef01-0000-4000-8000-00000000000{n}") for n in (1, 2)]
    with Session(p.engine) as session:
        for twin in twins:
            session.add(_plan_row(twin))
        session.commit()

    ambiguous = p.run("fleet", "show-plan", "abcdef01", token=token)
    assert ambiguous.exit_code == 2, (ambiguous.stdout, ambiguous.stderr)
    listed = re.search(r"'abcdef01' names 2 fleet plans: (\S+), (\S+)\.\n", ambiguous.stderr)
    assert listed is not None, ambiguous.stderr
    assert sorted(listed.groups()) == [str(twin) for twin in twins]
    assert f"hint: Give more of the id, e.g. `cityctl fleet show-plan {listed[1]}`" in (
        ambiguous.stderr
    )
    assert p.json("fleet", "show-plan", str(twins[1]), token=token)["id"] == str(twins[1])

    too_short = p.run("fleet", "show-plan", "abc", token=token)
    assert too_short.exit_code == 2
    assert "at least its first 4 hex digits" in too_short.stderr

    plan_ids = [row["id"] for row in p.json("fleet", "plans", token=token)]
    unknown = next(
        prefix for prefix in ("0000", "1111", "2222", "3333") if not any(
            i.startswith(prefix) for i in plan_ids
        )
    )  # fmt: skip
    missing = p.run("fleet", "run", unknown, token=token)
    assert missing.exit_code == 4, (missing.stdout, missing.stderr)
    assert f"No fleet plan has an id starting with '{unknown}'" in missing.stderr
    assert "`cityctl fleet plans`" in missing.stderr

    run_ids = [row["id"] for row in p.json("fleet", "runs", token=token)]
    prefix = next(
        prefix for prefix in ("0000", "1111", "2222", "3333") if not any(
            i.startswith(prefix) for i in run_ids
        )
    )  # fmt: skip
    no_run = p.run("fleet", "pause", prefix, token=token)
    assert no_run.exit_code == 4
    assert "`cityctl fleet runs`" in no_run.stderr
