"""Output of reads: ``-o table`` for people, ``-o json`` and ``-o yaml`` for scripts.

JSON output is the API's JSON as it is (stable, documented in docs/cli.md); tables pick
columns. Errors go to stderr, data to stdout.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml_rs
from rich.console import Console
from rich.table import Table

from cli.errors import CliError

stdout = Console(soft_wrap=True)
#: Tables piped into a file or another program are not cut to 80 columns (like kubectl).
_piped = Console(soft_wrap=True, width=1000)
stderr = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOpt = Annotated[
    Format,
    # FORMAT, not <table|json|yaml>: the help names the choices, and the long form pushed
    # option names out of an 80-column --help.
    typer.Option("--output", "-o", metavar="FORMAT", help="Output format: table, json or yaml."),
]


#: A YAML null the emitter writes as ``~``, at the end of a mapping or sequence line.
_YAML_TILDE = re.compile(r"^(\s*(?:- |[^\n]*?: ))~$", re.MULTILINE)


def emit(
    data: Any,
    fmt: Format,
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    empty: str = "Nothing to list.",
) -> None:
    """Print ``data`` (a dict or a list of dicts) in the chosen format.

    An empty list in a table is the sentence ``empty`` on stderr (as kubectl's "No
    resources found"), not a header without rows; JSON and YAML print ``[]``.
    """
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt is Format.YAML:
        sys.stdout.write(_yaml(data))
        return
    if isinstance(data, list) and not data:
        stderr.print(empty, highlight=False, markup=False)
        return
    rows = data if isinstance(data, list) else [data]
    if columns is None:
        columns = [(key, key.upper()) for key in (rows[0].keys() if rows else [])]
    table = Table(box=None, pad_edge=False, show_edge=False)
    for _, header in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(_cell(_dig(row, key)) for key, _ in columns))
    (stdout if stdout.is_terminal else _piped).print(table)


def _yaml(data: Any) -> str:
    """YAML with ``null`` where the emitter writes ``~`` (the same YAML; people read
    ``null``). A text that the rewrite would change (a ``~`` line inside a block string)
    keeps the emitter's form: the document must mean the same."""
    text = yaml_rs.dumps(data)
    readable = _YAML_TILDE.sub(r"\1null", text)
    if readable != text and yaml_rs.loads(readable) != yaml_rs.loads(text):
        return text
    return readable


def _dig(row: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def _cell(value: Any) -> str:
    # Tables speak the API's JSON words (true/false), never Python's (True/None).
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def fail(error: CliError) -> None:
    """Print a failure as one line plus a hint, then exit with its code."""
    stderr.print(f"[red]error:[/red] {error.message}", highlight=False, markup=True)
    if error.hint:
        stderr.print(f"[dim]hint:[/dim] {error.hint}", highlight=False)
    raise typer.Exit(int(error.exit_code))
