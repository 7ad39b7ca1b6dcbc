"""`cityctl catalog list | show | publish | deprecate | retire | reactivate`.

Everyone reads the catalogue (services, versions, plans with their monthly price,
parameters); operators publish, retire and reactivate versions. Deprecating and retiring
first show who runs the version (the API's impact endpoint) and ask.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import ApiClient
from cli.commands._shared import API, YesOpt, confirm, read_values, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr, stdout
from cli.state import state

app = typer.Typer(
    help="The shared service catalogue: services, versions, plans.", no_args_is_help=True
)

Service = Annotated[str, typer.Argument(help="Service name, e.g. keycloak.")]
Version = Annotated[str, typer.Argument(help="Semantic version, e.g. 26.0.7.")]

VERSION_COLUMNS = [
    ("version", "VERSION"),
    ("app_version", "APP VERSION"),
    ("status", "STATUS"),
    ("support_ends", "SUPPORT ENDS"),
    ("published_at", "PUBLISHED"),
]
PLAN_COLUMNS = [
    ("name", "PLAN"),
    ("title", "TITLE"),
    ("monthly_price", "€/MONTH"),
    ("replicas", "REPLICAS"),
    ("cpu.limit", "CPU"),
    ("memory.limit", "MEMORY"),
    ("storage", "STORAGE"),
]


def newest_active(service: dict[str, Any]) -> str | None:
    """The version the API picks when none is named: the last active one (semver order)."""
    active = [v["version"] for v in service.get("versions", []) if v.get("status") == "active"]
    return active[-1] if active else None


def version_details(client: ApiClient, service: str, version: str | None) -> dict[str, Any]:
    """The published version (``None`` = newest active), with plans and parameter schema."""
    if version is None:
        summary = client.get_json(f"{API}/catalog/{seg(service)}")
        version = newest_active(summary)
        if version is None:
            raise CliError(
                f"Service {service!r} has no active version.",
                exit_code=ExitCode.CONFLICT,
                hint=f"See its versions with `cityctl catalog show {service}`.",
            )
    result: dict[str, Any] = client.get_json(
        f"{API}/catalog/{seg(service)}/versions/{seg(version)}"
    )
    return result


@app.command("list")
def list_(output: OutputOpt = Format.TABLE) -> None:
    """List the published services and their versions.

    Example: cityctl catalog list -o json
    """
    with state.client() as client:
        items = client.list_all(f"{API}/catalog")
    if output is not Format.TABLE:
        emit(items, output)
        return
    rows = [
        {
            "name": item["name"],
            "title": item["title"],
            "category": item["category"],
            "latest": newest_active(item) or "-",
            "versions": ", ".join(f"{v['version']} ({v['status']})" for v in item["versions"]),
        }
        for item in items
    ]
    emit(
        rows,
        output,
        [
            ("name", "SERVICE"),
            ("title", "TITLE"),
            ("category", "CATEGORY"),
            ("latest", "LATEST"),
            ("versions", "VERSIONS"),
        ],
    )


@app.command()
def show(
    service: Service,
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="Show this version's plans and parameters instead of the service."
        ),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Show a service: its versions, and the plans (with monthly price) and parameters.

    Without --version, -o json/yaml prints the service with its versions; with --version,
    the published version with plans and parameter schema.

    Example: cityctl catalog show keycloak --version 26.0.7
    """
    details: dict[str, Any] | None
    summary: dict[str, Any] | None
    with state.client() as client:
        if version is not None:
            details = version_details(client, service, version)
            summary = None
        else:
            summary = client.get_json(f"{API}/catalog/{seg(service)}")
            if output is not Format.TABLE:
                emit(summary, output)
                return
            newest = newest_active(summary)
            details = version_details(client, service, newest) if newest else None
    if output is not Format.TABLE:
        emit(details, output)
        return
    head = summary or details or {}
    stdout.print(f"[bold]{head.get('title')}[/bold] ({service}) — {head.get('category')}")
    stdout.print(str(head.get("description", "")).strip(), highlight=False)
    if summary is not None:
        stdout.print("\n[bold]Versions[/bold]")
        versions = [
            {
                **v,
                "support": support_note(v.get("support_ends")),
                "migrations": "forward-only" if v.get("forward_only_migrations") else "",
            }
            for v in summary["versions"]
        ]
        columns = [
            ("support", "SUPPORT") if key == "support_ends" else (key, header)
            for key, header in VERSION_COLUMNS
        ]
        emit(versions, output, [*columns, ("migrations", "MIGRATIONS")])
        if any(v["migrations"] for v in versions):
            stdout.print(
                "forward-only: upgrading into it migrates data that older versions cannot "
                "read; rolling back across it needs --allow-data-loss."
            )
    if details is not None:
        number = details["version"]["version"]
        stdout.print(f"\n[bold]Plans of {number}[/bold] ({details['status']})")
        emit(details["plans"], output, PLAN_COLUMNS)
        entry_points(details)
        data_places(details)
        properties = (details.get("parameters") or {}).get("properties") or {}
        if properties:
            stdout.print(f"\n[bold]Parameters of {number}[/bold] (--set name=value)")
            emit(
                [
                    {
                        "name": name,
                        "type": spec.get("type"),
                        "default": spec.get("default"),
                        "allowed": allowed_values(spec),
                        "description": spec.get("description"),
                    }
                    for name, spec in properties.items()
                ],
                output,
                [
                    ("name", "NAME"),
                    ("type", "TYPE"),
                    ("default", "DEFAULT"),
                    ("allowed", "ALLOWED"),
                    ("description", "DESCRIPTION"),
                ],
            )
    if details is None and summary is not None:
        data_places(summary)


def data_places(details: dict[str, Any]) -> None:
    """Where the service keeps data, what each place holds and whether it is backed up."""
    places = details.get("data") or []
    if not places:
        return
    stdout.print("\n[bold]Data[/bold] (where an instance keeps it, and its backups)")
    for place in places:
        stdout.print(
            f"- {place.get('name')} ({place.get('kind')}): {place.get('holds')}\n"
            f"  backup: {place.get('backup')}",
            highlight=False,
            markup=False,
        )


def entry_points(details: dict[str, Any]) -> None:
    """The version's entry points: where an instance answers, around its host name."""
    points = details.get("entry_points") or []
    if not points:
        return
    stdout.print(f"\n[bold]Entry points of {details['version']['version']}[/bold]")
    emit(
        [
            {**p, "where": f"https://{p.get('host_prefix', '')}<hostname>{p.get('path', '/')}"}
            for p in points
        ],
        Format.TABLE,
        [("name", "NAME"), ("title", "TITLE"), ("where", "URL")],
    )


def allowed_values(spec: dict[str, Any]) -> str | None:
    """The values an enum parameter (or the items of an enum list) accepts, for the table."""
    choices = spec.get("enum") or (spec.get("items") or {}).get("enum")
    return ", ".join(str(choice) for choice in choices) if choices else None


def support_note(support_ends: str | None, today: date | None = None) -> str | None:
    """A support end as people read it: ``until 2027-01-31`` or, once it is in the past,
    ``unsupported since 2025-06-30``."""
    if not support_ends:
        return None
    ends = date.fromisoformat(support_ends)
    if ends < (today or date.today()):
        return f"unsupported since {support_ends}"
    return f"until {support_ends}"


@app.command()
def publish(
    service: Annotated[
        str | None, typer.Argument(help="Only this service (default: the whole catalogue).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only this version of SERVICE.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Upload this release (JSON/YAML: a service version with plans, parameters "
            "and its template bundle) instead of the server's catalogue files.",
        ),
    ] = None,
    correct: Annotated[
        list[str] | None,
        typer.Option(
            "--correct",
            metavar="SERVICE@VERSION",
            help="Replace this published version's release even though its objects changed "
            "(a fix of a broken release); its live instances re-render. Repeat for more. "
            "Needs --reason.",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why the published release is corrected (audited)."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Publish the server's shipped catalogue files (all, one service, or one version).

    Publishing is idempotent: an identical version is 'unchanged'; a changed one is a
    conflict (exit 5), because published versions are immutable. A version whose only
    change is metadata (entry points, admin credentials, forward-only migrations) is
    'amended': its digest stays. One whose template source changed but renders the same
    objects for every plan is 'equivalent': the published release is kept. With --file,
    upload a release built elsewhere.

    Operators fix a broken published release with --correct SERVICE@VERSION --reason TEXT:
    it is 'corrected' (new digest, audited) and every live instance of that version gets a
    new generation that renders it.

    Example: cityctl catalog publish keycloak --version 26.0.7
    """
    if version is not None and service is None:
        raise CliError(
            "--version needs a SERVICE.",
            exit_code=ExitCode.USAGE,
            hint="Write e.g. `cityctl catalog publish keycloak --version 26.0.7`.",
        )
    corrections = [_correction(text) for text in correct or []]
    if corrections and not (reason or "").strip():
        raise CliError(
            "--correct needs --reason.",
            exit_code=ExitCode.USAGE,
            hint="Say why the published release is wrong, e.g. --reason 'runs as the wrong "
            "user id'; it goes into the audit log.",
        )
    if reason is not None and not corrections:
        raise CliError(
            "--reason is for a correction.",
            exit_code=ExitCode.USAGE,
            hint="Name the version to correct with --correct SERVICE@VERSION.",
        )
    body: dict[str, Any]
    if file is not None:
        if service is not None or version is not None:
            raise CliError(
                "Give either --file or SERVICE/--version, not both.",
                exit_code=ExitCode.USAGE,
                hint="`cityctl catalog publish --file release.yaml` uploads one release.",
            )
        body = {"release": read_values(file)}
    else:
        body = {"service": service, "version": version}
    if corrections:
        body["correct"] = corrections
        body["reason"] = reason
    with state.client() as client:
        # Safe to retry: publishing the same content again is a no-op on the server.
        result = client.call("POST", f"{API}/catalog/publish", json=body, create=True).json()
    items = result["published"]
    counts = Counter(item["outcome"] for item in items)
    notes = [
        f"{counts['amended']} amended (metadata only)" if counts["amended"] else "",
        f"{counts['equivalent']} kept (the source changed, the objects did not)"
        if counts["equivalent"]
        else "",
        f"{counts['corrected']} corrected "
        f"({sum(i.get('instances_changed') or 0 for i in items)} instance(s) re-render)"
        if counts["corrected"]
        else "",
    ]
    extra = "".join(f", {note}" for note in notes if note)
    stderr.print(
        f"Published {counts['created']} new version(s){extra}; {counts['unchanged']} unchanged."
    )
    if output is Format.TABLE:
        emit(
            items,
            output,
            [
                ("service", "SERVICE"),
                ("version", "VERSION"),
                ("outcome", "OUTCOME"),
                ("digest", "DIGEST"),
            ],
        )
    else:
        emit(result, output)


def _correction(text: str) -> dict[str, str]:
    """``keycloak@26.0.7`` → the API's ``{"service", "version"}``."""
    service, sep, version = text.partition("@")
    if not sep or not service or not version:
        raise CliError(
            f"--correct {text!r} is not SERVICE@VERSION.",
            exit_code=ExitCode.USAGE,
            hint="Write e.g. --correct keycloak@26.0.7.",
        )
    return {"service": service, "version": version}


@app.command()
def deprecate(
    service: Service,
    version: Version,
    support_ends: Annotated[
        str | None,
        typer.Option("--support-ends", help="Last day of support, YYYY-MM-DD."),
    ] = None,
    message: Annotated[
        str | None, typer.Option(help="What tenants should do, e.g. 'Upgrade to 26.0.7'.")
    ] = None,
    yes: YesOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Deprecate a version: existing instances keep running, new ones get a warning.

    Shows how many live instances (of which tenants) run the version and asks first.

    Example: cityctl catalog deprecate keycloak 25.0.6 --support-ends 2025-06-30 --yes
    """
    if support_ends is not None:
        try:
            date.fromisoformat(support_ends)
        except ValueError:
            raise CliError(
                f"--support-ends {support_ends!r} is not a date.",
                exit_code=ExitCode.USAGE,
                hint="Write the date as YYYY-MM-DD, e.g. 2025-06-30.",
            ) from None
    body = {"support_ends": support_ends, "message": message}
    path = f"{API}/catalog/{seg(service)}/versions/{seg(version)}/deprecate"
    with state.client() as client:
        impact = _show_impact(client, service, version)
        confirm(f"deprecate {service} {version} ({_usage(impact)})", yes=yes)
        result = client.call("POST", path, json=body).json()
    stderr.print(f"{service} {version} is {result['status']}.")
    _emit_version(result, output)


@app.command()
def retire(
    service: Service,
    version: Version,
    message: Annotated[str | None, typer.Option(help="Why, and what to use instead.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Retire even the last version new instances can use while instances of "
            "the service run.",
        ),
    ] = False,
    yes: YesOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Retire a version: no new instances; existing ones must upgrade.

    Shows how many live instances (of which tenants) run the version and asks first. The
    last version new instances can use is only retired with --force while the service has
    live instances. `cityctl catalog reactivate` undoes a retirement.

    Example: cityctl catalog retire keycloak 25.0.6 --message 'Upgrade to 26.0.7' --yes
    """
    path = f"{API}/catalog/{seg(service)}/versions/{seg(version)}/retire"
    with state.client() as client:
        impact = _show_impact(client, service, version)
        # Refused anyway without --force: let the API say so (with its hint) without asking.
        if force or not impact["retire_needs_force"]:
            confirm(f"retire {service} {version} ({_usage(impact)})", yes=yes)
        result = client.call(
            "POST", path, json={"message": message}, params={"force": force or None}
        ).json()
    stderr.print(f"{service} {version} is {result['status']}.")
    _emit_version(result, output)


@app.command()
def reactivate(
    service: Service,
    version: Version,
    message: Annotated[
        str | None, typer.Option(help="Replaces the retirement message (default: none).")
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Undo a retirement: the version accepts new instances again.

    It becomes deprecated if it has a support end date, else active.

    Example: cityctl catalog reactivate keycloak 26.0.7
    """
    path = f"{API}/catalog/{seg(service)}/versions/{seg(version)}/reactivate"
    with state.client() as client:
        result = client.call("POST", path, json={"message": message}).json()
    stderr.print(f"{service} {version} is {result['status']}.")
    _emit_version(result, output)


def _show_impact(client: ApiClient, service: str, version: str) -> dict[str, Any]:
    """Print who runs the version (to stderr) and return the API's impact record."""
    impact: dict[str, Any] = client.get_json(
        f"{API}/catalog/{seg(service)}/versions/{seg(version)}/impact"
    )
    stderr.print(f"{service} {version} ({impact['status']}): {_usage(impact)}.", highlight=False)
    for usage in impact["tenants"]:
        stderr.print(f"  {usage['tenant']}: {usage['instances']} instance(s)", highlight=False)
    if impact["last_usable"]:
        stderr.print(
            f"It is the last version of {service} that new instances can use "
            f"({impact['service_live_instances']} live instance(s) of {service} in all).",
            highlight=False,
        )
    return impact


def _usage(impact: dict[str, Any]) -> str:
    return f"{impact['live_instances']} live instance(s) in {len(impact['tenants'])} tenant(s)"


def _emit_version(details: dict[str, Any], output: Format) -> None:
    if output is not Format.TABLE:
        emit(details, output)
        return
    row = {
        "version": details["version"]["version"],
        "app_version": details["version"]["app_version"],
        "status": details["status"],
        "support_ends": details.get("support_ends"),
        "published_at": details.get("published_at"),
    }
    emit(row, output, VERSION_COLUMNS)
