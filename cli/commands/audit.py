"""`cityctl audit list`: who changed what, when and from where (newest first)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

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
    ("what", "WHAT"),
    ("resource", "RESOURCE"),
    ("tenant", "TENANT"),
    ("outcome", "OUTCOME"),
    ("source_ip", "FROM"),
]


def _release(version: str) -> tuple[int, ...] | None:
    """The numbers of a version's release part (``26.0.7-1`` → ``(26, 0, 7)``), if any."""
    numbers = re.findall(r"\d+", version.split("-", 1)[0].split("+", 1)[0])
    return tuple(int(n) for n in numbers) or None


def _version_change(old: Any, new: Any) -> str:
    before, after = _release(str(old)), _release(str(new))
    word = "version"
    if before is not None and after is not None and before != after:
        word = "upgrade" if after > before else "downgrade"
    return f"{word} {old} → {new}"


def describe(event: dict[str, Any]) -> str:
    """What an instance change did, in a few words, from its audit details.

    ``instance.update`` covers upgrades, plan and parameter changes alike; the table says
    which (parameter values are never audited, only their keys); a corrected published
    release says why (docs/catalog.md, "Correcting"). Other actions: empty.
    """
    details = event.get("details") or {}
    action = event.get("action")
    if action == "instance.rollback" and "revision" in details:
        return f"rollback to revision {details['revision']}"
    if action == "fleet.instance.upgrade" and isinstance(details.get("version"), list):
        return _version_change(*details["version"][:2])
    if action == "instance.release_corrected":
        return f"published release of {details.get('version')} corrected: {details.get('reason')}"
    if action != "instance.update":
        return ""
    parts: list[str] = []
    for key, value in (details.get("changed") or {}).items():
        if key == "version" and isinstance(value, list) and len(value) == 2:
            parts.append(_version_change(*value))
        elif key == "plan" and isinstance(value, list) and len(value) == 2:
            parts.append(f"plan {value[0]} → {value[1]}")
        elif key == "parameters":
            keys = ", ".join(str(k) for k in value) if isinstance(value, list) else ""
            parts.append(f"parameters changed (keys: {keys})" if keys else "parameters changed")
        else:
            parts.append(f"{key} changed")
    return "; ".join(parts)


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
    items = items[:limit]
    if output is Format.TABLE:
        # Only the table gets the computed WHAT column; JSON/YAML stay the API's documents.
        items = [{**event, "what": describe(event)} for event in items]
    emit(items, output, COLUMNS)
