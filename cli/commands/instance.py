"""`cityctl instance list | show | create | update | upgrade | rollback | history | delete |
protect | unprotect`.

A municipality's own service stacks. Writes record the desired state and come back at
once (the API answers 202); ``--wait`` follows the reconciler until the stack is Ready
or Failed. Updates send ``If-Match`` with the generation just read, so two people
changing one instance at the same time get a conflict (exit 5) instead of a lost update.
A protected instance cannot be deleted until ``unprotect`` (a step of its own) lifts it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import typer

from cli.client import ApiClient
from cli.commands._shared import (
    API,
    SetOpt,
    TenantOpt,
    ValuesOpt,
    YesOpt,
    confirm,
    instances_path,
    merge,
    parameters_from,
    resolve_tenant,
    seg,
)
from cli.commands._urls import print_urls
from cli.commands._waiting import TimeoutOpt, WaitOpt, describe, wait_for_instance
from cli.commands.catalog import newest_active, version_details
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(
    help="Your service instances: create, change, upgrade, roll back, delete.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="Instance name (unique within the tenant), e.g. login.")]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check everything on the server and show the objects and the price; change nothing.",
    ),
]
#: The query of a server-side dry run (the Kubernetes spelling).
DRY_RUN = {"dryRun": "All"}
OBJECT_COLUMNS = [("kind", "KIND"), ("namespace", "NAMESPACE"), ("name", "NAME")]

COLUMNS = [
    ("tenant", "TENANT"),
    ("name", "NAME"),
    ("service", "SERVICE"),
    ("version", "VERSION"),
    ("plan", "PLAN"),
    ("status.phase", "PHASE"),
    ("generation", "GEN"),
    ("status.observedGeneration", "OBSERVED"),
    ("status.currentRevision", "REVISION"),
    ("target", "TARGET"),
    ("notes", "NOTES"),
]
REVISION_COLUMNS = [
    ("number", "REVISION"),
    ("version", "VERSION"),
    ("plan", "PLAN"),
    ("storage", "STORAGE"),
    ("outcome", "OUTCOME"),
    ("rollback_of", "ROLLBACK OF"),
    ("created_at", "CREATED"),
    ("message", "MESSAGE"),
]


def lifecycle_notes(instance: dict[str, Any]) -> str:
    """The short table note on the pinned version: retired, unsupported after DATE, upgrade.

    The API's ``lifecycle.message`` is a whole sentence, too long for a table cell; the
    table says the same in a few words and ``-o json``/``-o yaml`` keep the full view.
    """
    lifecycle = instance.get("lifecycle") or {}
    notes: list[str] = []
    if lifecycle.get("retired"):
        notes.append("retired")
    elif lifecycle.get("deprecated"):
        ends = lifecycle.get("support_ends")
        past = isinstance(ends, str) and date.fromisoformat(ends) < date.today()
        when = f", unsupported {'since' if past else 'after'} {ends}" if ends else ""
        notes.append(f"deprecated{when}")
    if lifecycle.get("upgrade_available"):
        notes.append(f"upgrade available: {lifecycle['upgrade_available']}")
    return "; ".join(notes)


def _emit_instances(data: dict[str, Any] | list[dict[str, Any]], output: Format) -> None:
    # Only the table gets the computed NOTES column, so the JSON/YAML documents stay the
    # API's own (their field names are the documented, stable contract).
    if output is Format.TABLE:
        rows = data if isinstance(data, list) else [data]
        data = [{**row, "notes": _notes(row)} for row in rows]
    emit(data, output, COLUMNS)


def _notes(instance: dict[str, Any]) -> str:
    """The NOTES cell: deletion protection first, then the version's lifecycle."""
    notes = ["deletion protected"] if instance.get("deletion_protection") else []
    if instance.get("purge_after"):
        notes.append(f"retained until {str(instance['purge_after'])[:16].replace('T', ' ')}")
    lifecycle = lifecycle_notes(instance)
    return "; ".join([*notes, lifecycle] if lifecycle else notes)


def _warn(instance: dict[str, Any]) -> None:
    for warning in instance.get("warnings") or []:
        stderr.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def _quote(client: ApiClient, slug: str, instance: dict[str, Any], plan: dict[str, Any]) -> None:
    """The plan's monthly price and the tenant's estimated share of the shared costs.

    Shown only after the server's dry run admitted the request, so a refused request never
    shows a price. The share is the billing estimate of one more instance of the plan; when
    it cannot be had (no prices yet) the line says that a share comes on top.
    """
    line = (
        f"{instance['service']} {instance['version']}, plan {plan['name']} ({plan['title']}): "
        f"€ {plan['monthly_price']} per month, plus the tenant's share of the service's and "
        "the platform's shared costs"
    )
    try:
        estimate = client.get_json(
            f"{API}/billing/estimate", service=instance["service"], plan=plan["name"], tenant=slug
        )
    except CliError:
        estimate = None
    if estimate:
        share = Decimal(estimate["service_share"]) + Decimal(estimate["platform_share"])
        line += (
            f": estimated € {share} per month on the figures of {estimate['reference_period']}, "
            f"€ {estimate['monthly_total']} per month in all."
        )
    else:
        line += "."
    stderr.print(line, highlight=False)


def _show_dry_run(answer: dict[str, Any], output: Format) -> None:
    """What a dry run would apply: the objects (YAML/JSON) or their kinds and names (table)."""
    _warn(answer)
    objects: list[dict[str, Any]] = answer.get("objects") or []
    if output is Format.TABLE:
        emit(
            [
                {
                    "kind": o.get("kind"),
                    "namespace": (o.get("metadata") or {}).get("namespace"),
                    "name": (o.get("metadata") or {}).get("name"),
                }
                for o in objects
            ],
            output,
            OBJECT_COLUMNS,
        )
    else:
        emit(objects, output)
    stderr.print(
        f"Dry run: {len(objects)} objects would be applied to {answer['target']} "
        f"(namespace {answer['namespace']}); nothing was changed."
    )


def _finish(
    client: ApiClient,
    path: str,
    instance: dict[str, Any],
    *,
    wait: bool,
    timeout: float,
    output: Format,
    done: str,
) -> None:
    """Report a write: warnings, then either wait for the reconciler or say it is queued."""
    _warn(instance)
    if wait:
        settled = wait_for_instance(
            client, path, generation=int(instance["generation"]), timeout=timeout
        )
        if settled is not None:
            instance = settled
    else:
        stderr.print(
            f"{done} (generation {instance['generation']}); the reconciler applies it now. "
            f"Follow it with `cityctl instance show {instance['name']}` or use --wait."
        )
    _emit_instances(instance, output)
    if wait:
        print_urls(instance)


@app.command("list")
def list_(
    tenant: TenantOpt = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", "-A", help="Every tenant you can see (operators).")
    ] = False,
    service: Annotated[str | None, typer.Option(help="Only instances of this service.")] = None,
    phase: Annotated[str | None, typer.Option(help="Only instances in this phase.")] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """List the instances of a tenant (or of every tenant with -A).

    Example: cityctl instance list --tenant gent --phase Ready -o json
    """
    with state.client() as client:
        if all_tenants:
            slugs = [t["slug"] for t in client.list_all(f"{API}/tenants")]
        else:
            slugs = [resolve_tenant(client, tenant)]
        items: list[dict[str, Any]] = []
        for slug in slugs:
            items.extend(client.list_all(instances_path(slug), service=service, phase=phase))
    _emit_instances(items, output)


@app.command()
def show(name: Name, tenant: TenantOpt = None, output: OutputOpt = Format.YAML) -> None:
    """Show an instance: desired state, phase, conditions and current revision.

    Example: cityctl instance show login -o json
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        instance = client.get_json(path)
    _emit_instances(instance, output)
    print_urls(instance)


@app.command()
def create(
    name: Name,
    service: Annotated[str, typer.Option(help="Catalogue service, e.g. keycloak.")],
    plan: Annotated[str, typer.Option(help="Plan of the service, e.g. small.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Version (default: the newest active one).")
    ] = None,
    sets: SetOpt = None,
    values: ValuesOpt = None,
    target: Annotated[
        str | None, typer.Option(help="Target to place it on (default: placement decides).")
    ] = None,
    protect: Annotated[
        bool,
        typer.Option(
            "--protect",
            help="Protect it against deletion from the start (see `cityctl instance unprotect`).",
        ),
    ] = False,
    restore_from: Annotated[
        str | None,
        typer.Option(
            "--restore-from",
            metavar="NAME[@TIME]",
            help="Recover the database from the backups of your instance NAME (at TIME, "
            "ISO 8601 with offset; default the latest). See `cityctl instance backups NAME`.",
        ),
    ] = None,
    tenant: TenantOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Provision a service for your municipality; checks it and shows the monthly price first.

    --protect (or a plan that declares deletion protection) makes delete refuse it until
    `cityctl instance unprotect` lifts the protection. --restore-from starts its database
    from another instance's backups (files on volumes are not in those backups).

    Example: cityctl instance create login --service keycloak --plan small --wait
    """
    parameters = parameters_from(values, sets)
    with state.client() as client:
        slug = resolve_tenant(client, tenant)
        details = version_details(client, service, version)
        chosen = next((p for p in details["plans"] if p["name"] == plan), None)
        if chosen is None:
            known = ", ".join(p["name"] for p in details["plans"])
            raise CliError(
                f"{service} {details['version']['version']} has no plan {plan!r}.",
                exit_code=ExitCode.USAGE,
                hint=f"Choose one of: {known} (prices: `cityctl catalog show {service}`).",
            )
        number = details["version"]["version"]
        body: dict[str, Any] = {
            "name": name,
            "service": service,
            # Pin the version whose price was shown, so the answer matches what was quoted.
            "version": number,
            "plan": plan,
            "parameters": parameters,
        }
        if target is not None:
            body["target"] = target
        if protect:
            body["deletion_protection"] = True
        if restore_from is not None:
            body["restore_from"] = _restore_source(restore_from)
        # Admission first: a request the server refuses shows its error, never a price.
        checked = client.call("POST", instances_path(slug), json=body, params=DRY_RUN).json()
        _quote(client, slug, checked, chosen)
        if dry_run:
            _show_dry_run(checked, output)
            return
        instance = client.call("POST", instances_path(slug), json=body, create=True).json()
        _finish(
            client,
            instances_path(slug, name),
            instance,
            wait=wait,
            timeout=timeout,
            output=output,
            done=f"Instance {name} requested",
        )


def _restore_source(given: str) -> dict[str, Any]:
    """``NAME`` or ``NAME@TIME`` as the API's ``restore_from`` (the API checks the time)."""
    source, at, when = given.partition("@")
    if not source or (at and not when):
        raise CliError(
            f"--restore-from {given!r} is not NAME or NAME@TIME.",
            exit_code=ExitCode.USAGE,
            hint="Example: --restore-from forms@2026-11-28T09:30:00Z",
        )
    return {"instance": source, **({"time": when} if when else {})}


def _read(client: ApiClient, path: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The instance and the If-Match header that pins the generation just read."""
    response = client.call("GET", path)
    etag = response.headers.get("ETag")
    return response.json(), ({"If-Match": etag} if etag else {})


def _change(
    client: ApiClient,
    path: str,
    precondition: dict[str, str],
    body: dict[str, Any],
    *,
    done: str,
    wait: bool,
    timeout: float,
    output: Format,
    action: str = "",
) -> None:
    """Send a change guarded by the generation just read, then report it like any write.

    The change is a PATCH of the instance, or a POST to its ``action`` (``rollback``).
    """
    method, url = ("POST", f"{path}/{action}") if action else ("PATCH", path)
    instance = client.call(method, url, json=body, headers=precondition).json()
    _finish(client, path, instance, wait=wait, timeout=timeout, output=output, done=done)


@app.command()
def update(
    name: Name,
    plan: Annotated[str | None, typer.Option(help="Change to this plan.")] = None,
    sets: SetOpt = None,
    values: ValuesOpt = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", help="Remove a parameter (back to its default); repeatable."),
    ] = None,
    tenant: TenantOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Change the plan or parameters of an instance (parameters merge into the current ones).

    Example: cityctl instance update login --plan medium --set log_level=DEBUG --wait
    """
    given = parameters_from(values, sets)
    if plan is None and not given and not unset:
        raise CliError(
            "Nothing to change.",
            exit_code=ExitCode.USAGE,
            hint="Give --plan, --set key=value, --values FILE or --unset key.",
        )
    with state.client() as client:
        slug = resolve_tenant(client, tenant)
        path = instances_path(slug, name)
        current, precondition = _read(client, path)
        body: dict[str, Any] = {}
        if plan is not None:
            body["plan"] = plan
        if given or unset:
            parameters = merge(current.get("parameters") or {}, given)
            for key in unset or []:
                parameters.pop(key, None)
            body["parameters"] = parameters
        checked = client.call("PATCH", path, json=body, headers=precondition, params=DRY_RUN).json()
        if checked["plan"] != current["plan"] or checked["version"] != current["version"]:
            details = version_details(client, checked["service"], checked["version"])
            chosen = next(p for p in details["plans"] if p["name"] == checked["plan"])
            _quote(client, slug, checked, chosen)
        if dry_run:
            _show_dry_run(checked, output)
            return
        _change(
            client,
            path,
            precondition,
            body,
            done=f"Update of {name} requested",
            wait=wait,
            timeout=timeout,
            output=output,
        )


@app.command()
def upgrade(
    name: Name,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Target version (default: the newest active one)."),
    ] = None,
    tenant: TenantOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Upgrade an instance to a newer version (only along the version's upgrade path).

    Example: cityctl instance upgrade login --version 26.0.7 --wait
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        current, precondition = _read(client, path)
        if version is None:
            summary = client.get_json(f"{API}/catalog/{seg(current['service'])}")
            version = newest_active(summary)
            if version is None:
                raise CliError(
                    f"{current['service']} has no active version to upgrade to.",
                    exit_code=ExitCode.CONFLICT,
                    hint=f"See `cityctl catalog show {current['service']}`.",
                )
        if version == current["version"]:
            stderr.print(f"{name} already runs {current['service']} {version}; nothing to do.")
            _emit_instances(current, output)
            return
        _change(
            client,
            path,
            precondition,
            {"version": version},
            done=f"Upgrade of {name} from {current['version']} to {version} requested",
            wait=wait,
            timeout=timeout,
            output=output,
        )


@app.command()
def rollback(
    name: Name,
    revision: Annotated[
        int | None,
        typer.Option(
            "--revision",
            min=1,
            help="Revision to go back to (default: the last applied one before the current).",
        ),
    ] = None,
    allow_data_loss: Annotated[
        bool,
        typer.Option(
            "--allow-data-loss",
            help="Go back across versions whose data migrations only go forward (asks first).",
        ),
    ] = False,
    yes: YesOpt = False,
    tenant: TenantOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Roll back to an earlier revision's version, plan and parameters (a new revision).

    A rollback across a version with forward-only data migrations is refused unless
    --allow-data-loss is given (it asks for confirmation naming those versions unless --yes).

    Example: cityctl instance rollback login --revision 1 --wait
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        current, precondition = _read(client, path)
        if revision is None:
            present = int(current["status"].get("currentRevision") or 0)
            earlier = [
                r
                for r in client.list_all(f"{path}/revisions")
                if r["number"] < present and r["outcome"] == "applied"
            ]
            if not earlier:
                raise CliError(
                    f"{name} has no applied revision before revision {present}.",
                    exit_code=ExitCode.CONFLICT,
                    hint=f"See `cityctl instance history {name}`; name one with --revision.",
                )
            revision = max(r["number"] for r in earlier)
        body: dict[str, Any] = {"revision": revision}
        if allow_data_loss:
            body["allowDataLoss"] = True
        if dry_run:
            checked = client.call(
                "POST", f"{path}/rollback", json=body, headers=precondition, params=DRY_RUN
            ).json()
            _show_dry_run(checked, output)
            return
        if allow_data_loss:
            crossed = _forward_only_crossed(client, path, current, revision)
            if crossed:
                confirm(
                    f"roll {name} back from {current['version']} across {', '.join(crossed)} "
                    "(forward-only data migrations: data written since may be lost)",
                    yes=yes,
                )
        _change(
            client,
            path,
            precondition,
            body,
            action="rollback",
            done=f"Rollback of {name} to revision {revision} requested",
            wait=wait,
            timeout=timeout,
            output=output,
        )


def _forward_only_crossed(
    client: ApiClient, path: str, current: dict[str, Any], revision: int
) -> list[str]:
    """The forward-only versions a rollback to ``revision`` goes back across (as the API)."""
    target = next(
        (r["version"] for r in client.list_all(f"{path}/revisions") if r["number"] == revision),
        None,
    )
    if target is None:
        return []
    summary = client.get_json(f"{API}/catalog/{seg(current['service'])}")
    order = [v["version"] for v in summary["versions"]]  # oldest first (semver order)
    if target not in order or current["version"] not in order:
        return []
    low, high = order.index(target), order.index(current["version"])
    return [
        v["version"]
        for v in summary["versions"][low + 1 : high + 1]
        if v.get("forward_only_migrations")
    ]


@app.command()
def history(name: Name, tenant: TenantOpt = None, output: OutputOpt = Format.TABLE) -> None:
    """List the revisions of an instance, newest first (like `helm history`).

    Example: cityctl instance history login -o json
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        emit(client.list_all(f"{path}/revisions"), output, REVISION_COLUMNS)


@app.command()
def delete(
    name: Name,
    tenant: TenantOpt = None,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Delete everything now, data included, instead of retaining the data.",
        ),
    ] = False,
    yes: YesOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Delete an instance: its workloads stop and its data is retained until its purge date
    (`cityctl instance restore` brings it back). With --purge everything goes now, data
    included (also for a retained instance). Revisions stay in the history.

    A protected instance is refused (exit 5) until `cityctl instance unprotect` lifts it.

    Example: cityctl instance delete login --purge --yes --wait
    """
    with state.client() as client:
        slug = resolve_tenant(client, tenant)
        path = instances_path(slug, name)
        current, precondition = _read(client, path)
        # A protected instance: no question whose answer cannot matter; the API refuses it
        # (409 deletion_protected, with the command that lifts the protection).
        if not current.get("deletion_protection"):
            if purge:
                question = (
                    f"purge {slug}/{name} ({current['service']} {current['version']}, "
                    f"{describe(current)}): delete it and all its data now, without restore"
                )
            else:
                question = (
                    f"delete {slug}/{name} ({current['service']} {current['version']}, "
                    f"{describe(current)}); its data is kept until its purge date"
                )
            confirm(question, yes=yes)
        params = {"purge": "true"} if purge else None
        instance = client.call("DELETE", path, params=params, headers=precondition).json()
        if wait and not purge and instance.get("purge_after"):
            settled_retained = wait_for_instance(
                client, path, generation=int(instance["generation"]), timeout=timeout
            )
            instance = settled_retained or instance
        elif wait:
            settled = wait_for_instance(
                client, path, generation=int(instance["generation"]), timeout=timeout, deleting=True
            )
            if settled is None:
                # Gone: the reconciler finished the deletion at this generation (it records
                # Deleted with observedGeneration = generation), so the row must not show a
                # generation that looks still pending.
                status = {
                    **instance["status"],
                    "phase": "Deleted",
                    "observedGeneration": instance["generation"],
                }
                settled = {**instance, "status": status}
            instance = settled
        elif instance.get("purge_after") and not purge:
            stderr.print(
                f"{name} is deleted; its data is retained until "
                f"{str(instance['purge_after'])[:16].replace('T', ' ')} UTC. Bring it back "
                f"with `cityctl instance restore {name}`, remove it now with "
                f"`cityctl instance delete {name} --purge`."
            )
        else:
            stderr.print(
                f"Deletion of {name} requested; follow it with `cityctl instance show {name}` "
                "or use --wait."
            )
        _emit_instances(instance, output)


@app.command()
def restore(
    name: Name,
    tenant: TenantOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 600.0,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Bring a retained instance back (deleted without --purge, before its purge date):
    its workloads start again on the kept volumes.

    Example: cityctl instance restore login --wait
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        instance = client.call("POST", f"{path}/restore").json()
        _finish(
            client, path, instance, wait=wait, timeout=timeout, output=output, done="Restore queued"
        )


@app.command()
def protect(name: Name, tenant: TenantOpt = None, output: OutputOpt = Format.TABLE) -> None:
    """Protect an instance against deletion: delete is refused until it is lifted.

    Tenant administrators and operators; audited. Lift it with `cityctl instance unprotect`.

    Example: cityctl instance protect login
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        instance = client.call("POST", f"{path}/protection", create=True).json()
    stderr.print(f"{name} is protected against deletion.")
    _emit_instances(instance, output)


@app.command()
def unprotect(
    name: Name, tenant: TenantOpt = None, yes: YesOpt = False, output: OutputOpt = Format.TABLE
) -> None:
    """Lift the deletion protection of an instance (asks first unless --yes; audited).

    Afterwards `cityctl instance delete` can delete it.

    Example: cityctl instance unprotect login --yes
    """
    with state.client() as client:
        slug = resolve_tenant(client, tenant)
        path = instances_path(slug, name)
        current = client.get_json(path)
        if current.get("deletion_protection"):
            confirm(
                f"lift the deletion protection of {slug}/{name} ({current['service']} "
                f"{current['version']}): it can then be deleted with all its data",
                yes=yes,
            )
        instance = client.call("DELETE", f"{path}/protection").json()
    stderr.print(f"{name} is no longer protected against deletion.")
    _emit_instances(instance, output)
