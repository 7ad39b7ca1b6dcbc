"""`cityctl audit list`: who changed what, when and from where (newest first)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from cli.commands._shared import API
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit
from cli.state import state

app = typer.Typer(help="The audit trail of every change.", no_args_is_help=True)

COLUMNS = [
    ("at", "AT"),
    ("actor", "ACTOR"),
    ("action", "ACTION"),
    ("resource", "RESOURCE"),
    ("tenant", "TENANT"),
    ("outcome", "OUTCOME"),
    ("source_ip", "FROM"),
]


def _instant(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise CliError(
            f"{option} {value!r} is not a date or time.",
            exit_code=ExitCode.USAGE,
            hint=f"Write {option} 2025-01-31 or 2025-01-31T12:00:00+01:00.",
        ) from None


@app.command("list")
def list_(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only events of this tenant.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this actor.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. instance.create.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this date/time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many events.")] = 100,
    output: OutputOpt = Format.TABLE,
) -> None:
    """List audit events (a tenant token sees only its own tenant's).

    Example: cityctl audit list --tenant gent --action instance.create -o json
    """
    params = {
        "tenant": tenant,
        "actor": actor,
        "action": action,
        "since": _instant("--since", since),
        "until": _instant("--until", until),
    }
    items: list[dict[str, object]] = []
    cursor: str | None = None
    with state.client() as client:
        # Page by hand: the trail can be long, and --limit should stop early.
        while len(items) < limit:
            page = client.get_json(
                f"{API}/audit", limit=min(500, limit - len(items)), cursor=cursor, **params
            )
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    emit(items[:limit], output, COLUMNS)
