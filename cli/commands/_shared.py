"""Options and helpers that several nouns share: tenant resolution, --set/--values, confirmation.

Kept here so that every command spells an option the same way (``--tenant``, ``--set``,
``--yes``) and fails the same way. This module speaks HTTP through :class:`ApiClient`
only; it must not know the server's database or domain modules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml_rs

from cli.client import ApiClient
from cli.errors import CliError, ExitCode

API = "/api/v1"

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="Tenant slug (e.g. gent). Default: the tenant of your token (see `cityctl whoami`).",
        envvar="CITYCTL_TENANT",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Parameter as key=value (repeatable; dotted keys nest; values are read as JSON "
        "when they parse, else as text).",
    ),
]
ValuesOpt = Annotated[
    Path | None,
    typer.Option(
        "--values",
        "-f",
        help="JSON or YAML file of parameters; --set values override it.",
        exists=False,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def seg(value: str) -> str:
    """One URL path segment, escaped (a name can never add a path)."""
    return quote(value, safe="")


def resolve_tenant(client: ApiClient, tenant: str | None) -> str:
    """``--tenant`` when given, else the tenant the token is bound to."""
    if tenant:
        return tenant
    me = client.get_json(f"{API}/whoami")
    bound = me.get("tenant") if isinstance(me, dict) else None
    if not bound:
        raise CliError(
            f"Your token (role {me.get('role', '?')}) is not bound to a tenant.",
            exit_code=ExitCode.USAGE,
            hint="Name the tenant with --tenant SLUG (or set CITYCTL_TENANT).",
        )
    return str(bound)


def instances_path(tenant: str, name: str | None = None) -> str:
    path = f"{API}/tenants/{seg(tenant)}/instances"
    return f"{path}/{seg(name)}" if name is not None else path


def _scalar(text: str) -> Any:
    """``true``/``3``/``"x"``/``[1,2]`` as JSON when it parses; anything else as text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a": {"b": 1}, "c": "x"}``; refuse malformed items."""
    result: dict[str, Any] = {}
    for item in sets or []:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or not key or any(not part.strip() for part in parts):
            raise CliError(
                f"--set {item!r} is not key=value.",
                exit_code=ExitCode.USAGE,
                hint="Write --set name=value, e.g. --set admin_username=gentadmin "
                "(dotted keys nest: --set smtp.port=587).",
            )
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CliError(
                    f"--set {item!r} nests under {part!r}, which was already given a value.",
                    exit_code=ExitCode.USAGE,
                    hint="Give either the whole value or its nested keys, not both.",
                )
            node = child
        node[parts[-1]] = _scalar(raw)
    return result


def read_values(path: Path | None) -> dict[str, Any]:
    """The parameters of a ``--values`` file (JSON or YAML, a mapping at the top)."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"Cannot read the values file {path}: {exc.strerror or exc}.",
            exit_code=ExitCode.USAGE,
            hint="Give the path of a JSON or YAML file with --values.",
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml_rs.loads(text)
    except Exception as exc:  # yaml_rs raises its own error types; all mean "not parseable"
        raise CliError(
            f"The values file {path} is not valid JSON/YAML: {exc}.",
            exit_code=ExitCode.USAGE,
            hint="Fix the file; it must hold one mapping of parameter names to values.",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(
            f"The values file {path} must hold a mapping of parameter names to values.",
            exit_code=ExitCode.USAGE,
            hint="Write e.g. `admin_username: gentadmin` at the top level of the file.",
        )
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base`` (mappings merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged


def parameters_from(values: Path | None, sets: list[str] | None) -> dict[str, Any]:
    return merge(read_values(values), parse_sets(sets))


def confirm(question: str, *, yes: bool) -> None:
    """Ask before a destructive action; refuse to guess when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"Refusing to {question} without confirmation: stdin is not a terminal.",
            exit_code=ExitCode.USAGE,
            hint="Pass --yes to confirm in scripts.",
        )
    if not typer.confirm(f"{question[0].upper()}{question[1:]}?", default=False):
        raise CliError(
            "Cancelled; nothing was changed.",
            exit_code=ExitCode.FAILED,
            hint="Pass --yes to skip the question.",
        )
