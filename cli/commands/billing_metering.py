"""`cityctl billing rate list | set` and `cityctl billing usage import`: metering.

A unit rate prices one measure (cpu_core_hours, memory_gib_hours, storage_gib_months or an
operator-defined measure with its unit) from a date on, with a rule: request, measured or max.
`usage import` sends measured usage records (a JSON file) as one batch; the batch id defaults
to a digest of the file, so importing the same file again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.commands._shared import API
from cli.commands.billing import app as billing_app
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

rate_app = typer.Typer(
    help="Unit rates: the price of a core-hour, GiB-hour, GiB-month or your own measure.",
    no_args_is_help=True,
)
usage_app = typer.Typer(help="Measured usage: import records as batches.", no_args_is_help=True)
billing_app.add_typer(rate_app, name="rate")
billing_app.add_typer(usage_app, name="usage")

RATE_COLUMNS = [
    ("measure", "MEASURE"),
    ("rate", "RATE (EUR)"),
    ("unit", "UNIT"),
    ("rule", "RULE"),
    ("effective_from", "FROM"),
    ("created_by", "BY"),
]


@rate_app.command("list")
def list_rates(output: OutputOpt = Format.TABLE) -> None:
    """The unit rates by measure and date; a later rate of a measure replaces the earlier.

    Example: cityctl billing rate list
    """
    with state.client() as client:
        items = client.list_all(f"{API}/billing/rates")
    emit(items, output, RATE_COLUMNS, empty="No unit rates: usage is not rated.")


@rate_app.command("set")
def set_rate(
    measure: Annotated[
        str, typer.Argument(help="cpu_core_hours, memory_gib_hours, storage_gib_months or yours.")
    ],
    rate: Annotated[str, typer.Argument(help='Euro per unit, at most 6 decimals, e.g. "0.031".')],
    effective_from: Annotated[
        str, typer.Option("--from", help="YYYY-MM-DD: the rate applies from that day on.")
    ],
    unit: Annotated[
        str | None, typer.Option("--unit", help="The unit of your own measure, e.g. GiB-month.")
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option("--rule", help="request (default for built-ins), measured or max."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Add a unit rate from a date on (finance, operator); rates are never edited.

    Example: cityctl billing rate set cpu_core_hours 0.031 --from 2024-01-01 --rule max
    Example: cityctl billing rate set backup_gib_months 0.05 --from 2024-01-01 --unit GiB-month
    """
    body: dict[str, Any] = {"measure": measure, "rate": rate, "effective_from": effective_from}
    if unit is not None:
        body["unit"] = unit
    if rule is not None:
        body["rule"] = rule
    with state.client() as client:
        created = client.call("POST", f"{API}/billing/rates", json=body).json()
    if output is not Format.TABLE:
        emit(created, output)
        return
    stderr.print(
        f"Unit rate of {created['measure']} from {created['effective_from']}: "
        f"{created['rate']} EUR per {created['unit']} ({created['rule']}).",
        highlight=False,
    )
    emit([created], output, RATE_COLUMNS)


def _records(path: Path) -> tuple[str | None, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(
            f"Cannot read {path} as JSON: {exc}",
            exit_code=ExitCode.USAGE,
            hint='the file is a JSON list of records, or {"batch": …, "records": […]}',
        ) from exc
    if isinstance(data, list):
        return None, data
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        batch = data.get("batch")
        return (str(batch) if batch is not None else None), data["records"]
    raise CliError(
        f"{path} holds neither a list of records nor an object with records.",
        exit_code=ExitCode.USAGE,
        hint='a record: {"tenant": "gent", "instance": "<id>", "measure": "cpu_core_hours", '
        '"from": "2024-04-01T00:00:00+02:00", "to": "2024-05-01T00:00:00+02:00", '
        '"quantity": "12.5"}',
    )


@usage_app.command("import")
def import_usage(
    file: Annotated[Path, typer.Argument(help="A JSON file of measured usage records.")],
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="The batch id (default: from the file, else its digest)."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Import measured usage records as one batch (finance, operator); idempotent by batch.

    Each record: tenant, instance (id), measure, from, to (ISO with offset, inside one month)
    and quantity. The same file again changes nothing; another file under the same batch id
    is refused.

    Example: cityctl billing usage import usage-2024-04.json --batch opencost-2024-04
    """
    named, records = _records(file)
    batch_id = batch or named or "file-" + hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    with state.client() as client:
        response = client.call(
            "POST", f"{API}/billing/usage", json={"batch": batch_id, "records": records}
        )
    answer = response.json()
    if output is not Format.TABLE:
        emit(answer, output)
        return
    again = response.status_code == 200
    stderr.print(
        f"Usage batch {answer['batch']}: {answer['records']} records "
        + ("already imported, nothing changed." if again else "imported."),
        highlight=False,
    )
