"""`cityctl fleet plan | plans | preview | run | runs | status | pause | resume | cancel`.

Fleet upgrades over HTTP (``/api/v1/fleet``, docs/fleet.md): plan "service S from RANGE
to VERSION", look at what would change, run it in waves and follow it. Operators only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from cli.client import ApiClient
from cli.commands._fleet_ids import resolve, short
from cli.commands._shared import API, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(help="Fleet upgrades: plan, preview, run in waves.", no_args_is_help=True)

PLAN_ITEM_COLUMNS = [
    ("wave", "WAVE"),
    ("tenant", "TENANT"),
    ("instance", "INSTANCE"),
    ("from_version", "FROM"),
    ("added", "ADDED"),
    ("changed", "CHANGED"),
    ("removed", "REMOVED"),
]
RUN_ITEM_COLUMNS = [
    ("wave", "WAVE"),
    ("tenant", "TENANT"),
    ("instance", "INSTANCE"),
    ("state", "STATE"),
    ("message", "MESSAGE"),
]
RUN_COLUMNS = [
    ("short_id", "RUN"),
    ("plan", "PLAN"),
    ("status", "STATUS"),
    ("wave", "WAVE"),
    ("started_by", "STARTED BY"),
    ("created_at", "STARTED"),
    ("finished_at", "FINISHED"),
]
PLAN_COLUMNS = [
    ("short_id", "PLAN"),
    ("service", "SERVICE"),
    ("from", "FROM"),
    ("to", "TO"),
    ("instances", "INSTANCES"),
    ("created_at", "CREATED"),
]


PlanIdArg = Annotated[
    str, typer.Argument(help="The plan id, or a unique prefix of it (4+ hex digits).")
]
RunIdArg = Annotated[
    str, typer.Argument(help="The run id, or a unique prefix of it (4+ hex digits).")
]

#: Runs the executor is done with (``stopped`` waits for an operator, see ``_watch``).
FINAL_STATUSES = frozenset({"succeeded", "completed", "cancelled"})


def _numbered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with waves counted from 1, as in the headers ("wave 1/3"); JSON keeps the API's
    0-based ``wave``."""
    return [{**row, "wave": row["wave"] + 1} for row in rows]


def _plan_table(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            **item,
            "wave": item["wave"] + 1,
            "added": len(item["changes"]["added"]),
            "changed": len(item["changes"]["changed"]),
            "removed": len(item["changes"]["removed"]),
        }
        for item in plan["items"]
    ]


def _run_line(run: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    return (
        f"run {short(run['id'])}: {run['status']} (wave {run['wave'] + 1}/{len(run['waves'])}); "
        f"{run['service']} → {run['to']}; {counts}"
    )


def _show_run(run: dict[str, Any], output: Format) -> None:
    if output is not Format.TABLE:
        emit(run, output)
        return
    typer.echo(_run_line(run))
    if run.get("stop_reason"):
        typer.echo(f"stopped: {run['stop_reason']}")
    items = [item for wave in run["waves"] for item in wave["items"]]
    emit(_numbered(items), output, RUN_ITEM_COLUMNS)


@app.command("plan")
def plan(
    service: Annotated[str, typer.Option("--service", "-s", help="The service to upgrade.")],
    from_: Annotated[str, typer.Option("--from", help="Versions to upgrade, e.g. '>=25.0,<26.0'.")],
    to: Annotated[str, typer.Option("--to", help="The version to upgrade to.")],
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", "-t", metavar="SLUG", help="Only these tenants (repeat)."),
    ] = None,
    wave_size: Annotated[int, typer.Option(metavar="N", min=1, help="Instances per wave.")] = 10,
    max_concurrency: Annotated[int, typer.Option(metavar="N", min=1, help="Upgrades at once.")] = 5,
    pause: Annotated[int, typer.Option(metavar="N", min=0, help="Seconds between waves.")] = 0,
    failure_threshold: Annotated[
        str, typer.Option(help="Failures that stop the run: a count or a percentage (10%).")
    ] = "1",
    timeout: Annotated[
        int, typer.Option(metavar="N", min=1, help="Seconds an instance may take to become Ready.")
    ] = 900,
    ignore_windows: Annotated[
        bool,
        typer.Option(
            "--ignore-windows", help="Upgrade outside the tenants' maintenance windows too."
        ),
    ] = False,
    # The first spelling, still accepted; hidden because rich cut a name this long
    # at 80 columns.
    ignore_maintenance_windows: Annotated[
        bool, typer.Option("--ignore-maintenance-windows", hidden=True)
    ] = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Plan a fleet upgrade and preview the objects that would change per instance.

    Example: cityctl fleet plan -s keycloak --from '>=25.0.0,<26.0.0' --to 26.0.7
    """
    body = {
        "service": service,
        "from": from_,
        "to": to,
        "tenants": tenant or [],
        "wave_size": wave_size,
        "max_concurrency": max_concurrency,
        "pause_seconds": pause,
        "failure_threshold": failure_threshold,
        "instance_timeout_seconds": timeout,
        "ignore_maintenance_windows": ignore_windows or ignore_maintenance_windows,
    }
    with state.client() as client:
        created = client.call("POST", f"{API}/fleet/plans", json=body, create=True).json()
    if output is not Format.TABLE:
        emit(created, output)
        return
    typer.echo(
        f"plan {short(created['id'])}: {service} {from_} → {to}, "
        f"{len(created['items'])} instance(s) "
        f"in {created['waves']} wave(s)"
    )
    emit(_plan_table(created), output, PLAN_ITEM_COLUMNS)
    for excluded in created["excluded"]:
        typer.echo(f"excluded {excluded['tenant']}/{excluded['instance']}: {excluded['reason']}")
    typer.echo(f"run it with: cityctl fleet run {short(created['id'])}")


@app.command("plans")
def plans(output: OutputOpt = Format.TABLE) -> None:
    """List fleet plans (newest first).

    Example: cityctl fleet plans -o json
    """
    with state.client() as client:
        found = client.list_all(f"{API}/fleet/plans")
    if output is Format.TABLE:
        found = [{**row, "short_id": short(row["id"])} for row in found]
    emit(found, output, PLAN_COLUMNS)


@app.command("show-plan")
def show_plan(
    plan_id: PlanIdArg,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Show a plan: its instances, waves and the objects each upgrade changes.

    Example: cityctl fleet show-plan 3f2c9a10
    """
    with state.client() as client:
        plan_id = resolve(client, "plan", plan_id, "show-plan")
        found = client.get_json(f"{API}/fleet/plans/{seg(plan_id)}")
    emit(
        found if output is not Format.TABLE else _plan_table(found),
        output,
        None if output is not Format.TABLE else PLAN_ITEM_COLUMNS,
    )


@app.command("preview")
def preview(
    plan_id: PlanIdArg,
    instance: Annotated[str, typer.Argument(help="The instance as <tenant>/<instance>.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """The exact objects one instance's upgrade adds, changes and removes.

    Example: cityctl fleet preview 3f2c9a10 gent/login
    """
    with state.client() as client:
        plan_id = resolve(client, "plan", plan_id, "preview")
        found = client.get_json(f"{API}/fleet/plans/{seg(plan_id)}/preview", instance=instance)
    if output is not Format.TABLE:
        emit(found, output)
        return
    rows = [
        {"change": change, "object": object_id}
        for change in ("added", "changed", "removed")
        for object_id in found["changes"][change]
    ]
    emit(rows, output, [("change", "CHANGE"), ("object", "OBJECT")])


@app.command("run")
def run(
    plan_id: PlanIdArg,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Start executing a plan (the control plane's worker carries it out).

    Example: cityctl fleet run 3f2c9a10
    """
    with state.client() as client:
        plan_id = resolve(client, "plan", plan_id, "run")
        started = client.call(
            "POST", f"{API}/fleet/runs", json={"plan_id": plan_id}, create=True
        ).json()
    _show_run(started, output)


@app.command("runs")
def runs(output: OutputOpt = Format.TABLE) -> None:
    """List fleet runs (newest first).

    Example: cityctl fleet runs
    """
    with state.client() as client:
        found = client.list_all(f"{API}/fleet/runs")
    if output is Format.TABLE:
        found = [
            {**row, "short_id": short(row["id"]), "plan": short(row["plan_id"])}
            for row in _numbered(found)
        ]
    emit(found, output, RUN_COLUMNS)


@app.command("status")
def status(
    run_id: RunIdArg,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Refresh until the run ends: exit 0 if it succeeded, 1 if it completed with "
            "failures, was cancelled or stopped at the failure threshold.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.1, help="Seconds between refreshes with --watch."),
    ] = 2.0,
    timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS", min=1.0, help="Seconds --watch waits before giving up (exit 7)."
        ),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Status of a run per wave and instance, and its report once it stopped.

    Example: cityctl fleet status 7d41e2b0 --watch
    """
    with state.client() as client:
        run_id = resolve(client, "run", run_id, "status")
        path = f"{API}/fleet/runs/{seg(run_id)}"
        found = client.get_json(path)
        if watch:
            found = _watch(client, path, found, interval=interval, timeout=timeout)
    _show_run(found, output)
    if watch:
        _check_outcome(found)


def _watch(
    client: ApiClient,
    path: str,
    run: dict[str, Any],
    *,
    interval: float,
    timeout: float | None,
) -> dict[str, Any]:
    """Poll the run until the executor is done with it, one progress line on stderr per
    change (stdout keeps the final status, in the chosen format).

    A ``stopped`` run ends the watch too: it waits for an operator to resume or cancel.
    A ``paused`` one does not: whoever paused it resumes it.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        line = _run_line(run)
        if line != last:
            stderr.print(line, highlight=False, markup=False)
            last = line
        if run["status"] in FINAL_STATUSES or run["status"] == "stopped":
            return run
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(
                f"Gave up watching after {timeout:g}s; run {short(run['id'])} is {run['status']}.",
                exit_code=ExitCode.TIMEOUT,
                hint=f"The run goes on in the background: `cityctl fleet status "
                f"{short(run['id'])} --watch` follows it again.",
            )
        pause = interval if deadline is None else min(interval, deadline - time.monotonic())
        time.sleep(max(pause, 0.0))
        run = client.get_json(path)


def _check_outcome(run: dict[str, Any]) -> None:
    """Exit 1 (after the status was printed) when the run did not upgrade everything."""
    run_short = short(run["id"])
    if run["status"] == "completed":
        raise CliError(
            f"Run {run_short} completed with {run['failures']} failed instance(s).",
            exit_code=ExitCode.FAILED,
            hint=f"The STATE and MESSAGE columns of `cityctl fleet status {run_short}` name them.",
        )
    if run["status"] == "stopped":
        raise CliError(
            f"Run {run_short} stopped: {run.get('stop_reason') or 'failure threshold reached'}.",
            exit_code=ExitCode.FAILED,
            hint=f"Go on with `cityctl fleet resume {run_short}` or end it with "
            f"`cityctl fleet cancel {run_short}`.",
        )
    if run["status"] == "cancelled":
        raise CliError(
            f"Run {run_short} was cancelled; instances not started stay on their version.",
            exit_code=ExitCode.FAILED,
        )


def _act(action: str, run_id: str, output: Format) -> None:
    with state.client() as client:
        run_id = resolve(client, "run", run_id, action)
        _show_run(client.call("POST", f"{API}/fleet/runs/{seg(run_id)}/{action}").json(), output)


@app.command("pause")
def pause(run_id: RunIdArg, output: OutputOpt = Format.TABLE) -> None:
    """Start nothing new; in-flight upgrades finish.

    Example: cityctl fleet pause 7d41e2b0
    """
    _act("pause", run_id, output)


@app.command("resume")
def resume(run_id: RunIdArg, output: OutputOpt = Format.TABLE) -> None:
    """Go on after a pause or a stop at the failure threshold.

    Example: cityctl fleet resume 7d41e2b0
    """
    _act("resume", run_id, output)


@app.command("cancel")
def cancel(run_id: RunIdArg, output: OutputOpt = Format.TABLE) -> None:
    """Stop the run for good: in-flight upgrades finish, the rest stays on its version.

    Example: cityctl fleet cancel 7d41e2b0
    """
    _act("cancel", run_id, output)
