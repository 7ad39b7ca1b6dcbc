"""`cityctl fleet plan | plans | preview | run | runs | status | pause | resume | cancel`.

Fleet upgrades over HTTP (``/api/v1/fleet``, docs/fleet.md): plan "service S from RANGE
to VERSION", look at what would change, run it in waves and follow it. Operators only.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.commands._shared import API, seg
from cli.output import Format, OutputOpt, emit
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
    ("id", "RUN"),
    ("status", "STATUS"),
    ("wave", "WAVE"),
    ("started_by", "STARTED BY"),
    ("created_at", "STARTED"),
    ("finished_at", "FINISHED"),
]
PLAN_COLUMNS = [
    ("id", "PLAN"),
    ("service", "SERVICE"),
    ("from", "FROM"),
    ("to", "TO"),
    ("instances", "INSTANCES"),
    ("created_at", "CREATED"),
]


def _plan_table(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            **item,
            "added": len(item["changes"]["added"]),
            "changed": len(item["changes"]["changed"]),
            "removed": len(item["changes"]["removed"]),
        }
        for item in plan["items"]
    ]


def _show_run(run: dict[str, Any], output: Format) -> None:
    if output is not Format.TABLE:
        emit(run, output)
        return
    counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
    typer.echo(
        f"run {run['id']}: {run['status']} (wave {run['wave'] + 1}/{len(run['waves'])}); "
        f"{run['service']} → {run['to']}; {counts}"
    )
    if run.get("stop_reason"):
        typer.echo(f"stopped: {run['stop_reason']}")
    emit([item for wave in run["waves"] for item in wave["items"]], output, RUN_ITEM_COLUMNS)


@app.command("plan")
def plan(
    service: Annotated[str, typer.Option("--service", "-s", help="The service to upgrade.")],
    from_: Annotated[
        str, typer.Option("--from", help="Versions to upgrade, e.g. '>=25.0.0,<26.0.0'.")
    ],
    to: Annotated[str, typer.Option("--to", help="The version to upgrade to.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="Only these tenants (repeat).")
    ] = None,
    wave_size: Annotated[int, typer.Option(min=1, help="Instances per wave.")] = 10,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Upgrades at once.")] = 5,
    pause: Annotated[int, typer.Option(min=0, help="Seconds between waves.")] = 0,
    failure_threshold: Annotated[
        str, typer.Option(help="Failures that stop the run: a count or a percentage (10%).")
    ] = "1",
    timeout: Annotated[
        int, typer.Option(min=1, help="Seconds an instance may take to become Ready.")
    ] = 900,
    ignore_maintenance_windows: Annotated[
        bool, typer.Option(help="Upgrade outside the tenants' maintenance windows too.")
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
        "ignore_maintenance_windows": ignore_maintenance_windows,
    }
    with state.client() as client:
        created = client.call("POST", f"{API}/fleet/plans", json=body, create=True).json()
    if output is not Format.TABLE:
        emit(created, output)
        return
    typer.echo(
        f"plan {created['id']}: {service} {from_} → {to}, {len(created['items'])} instance(s) "
        f"in {created['waves']} wave(s)"
    )
    emit(_plan_table(created), output, PLAN_ITEM_COLUMNS)
    for excluded in created["excluded"]:
        typer.echo(f"excluded {excluded['tenant']}/{excluded['instance']}: {excluded['reason']}")
    typer.echo(f"run it with: cityctl fleet run {created['id']}")


@app.command("plans")
def plans(output: OutputOpt = Format.TABLE) -> None:
    """List fleet plans (newest first).

    Example: cityctl fleet plans -o json
    """
    with state.client() as client:
        emit(client.list_all(f"{API}/fleet/plans"), output, PLAN_COLUMNS)


@app.command("show-plan")
def show_plan(
    plan_id: Annotated[str, typer.Argument(help="The plan id.")], output: OutputOpt = Format.TABLE
) -> None:
    """Show a plan: its instances, waves and the objects each upgrade changes.

    Example: cityctl fleet show-plan 3f2c9a10-…
    """
    with state.client() as client:
        found = client.get_json(f"{API}/fleet/plans/{seg(plan_id)}")
    emit(
        found if output is not Format.TABLE else _plan_table(found),
        output,
        None if output is not Format.TABLE else PLAN_ITEM_COLUMNS,
    )


@app.command("preview")
def preview(
    plan_id: Annotated[str, typer.Argument(help="The plan id.")],
    instance: Annotated[str, typer.Argument(help="The instance as <tenant>/<instance>.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """The exact objects one instance's upgrade adds, changes and removes.

    Example: cityctl fleet preview 3f2c9a10-… gent/login
    """
    with state.client() as client:
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
    plan_id: Annotated[str, typer.Argument(help="The plan to execute.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """Start executing a plan (the control plane's worker carries it out).

    Example: cityctl fleet run 3f2c9a10-…
    """
    with state.client() as client:
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
        emit(client.list_all(f"{API}/fleet/runs"), output, RUN_COLUMNS)


@app.command("status")
def status(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """Status of a run per wave and instance, and its report once it stopped.

    Example: cityctl fleet status 7d41e2b0-… -o yaml
    """
    with state.client() as client:
        _show_run(client.get_json(f"{API}/fleet/runs/{seg(run_id)}"), output)


def _act(action: str, run_id: str, output: Format) -> None:
    with state.client() as client:
        _show_run(client.call("POST", f"{API}/fleet/runs/{seg(run_id)}/{action}").json(), output)


@app.command("pause")
def pause(run_id: Annotated[str, typer.Argument()], output: OutputOpt = Format.TABLE) -> None:
    """Start nothing new; in-flight upgrades finish.

    Example: cityctl fleet pause 7d41e2b0-…
    """
    _act("pause", run_id, output)


@app.command("resume")
def resume(run_id: Annotated[str, typer.Argument()], output: OutputOpt = Format.TABLE) -> None:
    """Go on after a pause or a stop at the failure threshold.

    Example: cityctl fleet resume 7d41e2b0-…
    """
    _act("resume", run_id, output)


@app.command("cancel")
def cancel(run_id: Annotated[str, typer.Argument()], output: OutputOpt = Format.TABLE) -> None:
    """Stop the run for good: in-flight upgrades finish, the rest stays on its version.

    Example: cityctl fleet cancel 7d41e2b0-…
    """
    _act("cancel", run_id, output)
