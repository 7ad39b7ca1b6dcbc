"""`cityctl billing estimate | report | close | reopen | export | closings`.

Finance reads the statements of a month (every municipality), closes and exports them;
an operator reopens a closed month; a municipality reads its own statement and asks what
a plan would cost before provisioning. Amounts stay the API's decimal strings: cityctl
never does arithmetic on money.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from cli.commands._shared import API, YesOpt, confirm, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(
    help="Billing: estimates, monthly statements, closing and exports.", no_args_is_help=True
)

Period = Annotated[str, typer.Argument(help="The billing month, YYYY-MM (Europe/Brussels).")]
OptionalPeriod = Annotated[
    str | None,
    typer.Argument(help="The billing month, YYYY-MM (default: the current month, Brussels time)."),
]
_PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")

SUMMARY_COLUMNS = [
    ("tenant.slug", "TENANT"),
    ("tenant.nis_code", "NIS"),
    ("totals.plan_fees", "PLAN FEES"),
    ("totals.shared_services", "SHARED SERVICES"),
    ("totals.platform", "PLATFORM"),
    ("totals.total", "TOTAL €"),
]
LINE_COLUMNS = [
    ("kind", "KIND"),
    ("service", "SERVICE"),
    ("plan", "PLAN"),
    ("pool", "POOL"),
    ("from", "FROM"),
    ("to", "TO"),
    ("quantity", "QUANTITY"),
    ("unit", "UNIT"),
    ("unit_price", "UNIT PRICE"),
    ("amount", "AMOUNT €"),
]


def _period(text: str | None) -> str:
    if text is None:
        # Billing months are Brussels calendar months (docs/billing.md).
        return datetime.now(ZoneInfo("Europe/Brussels")).strftime("%Y-%m")
    if not _PERIOD.fullmatch(text):
        raise CliError(
            f"{text!r} is not a billing month.",
            exit_code=ExitCode.USAGE,
            hint="Write the month as YYYY-MM, e.g. 2025-01.",
        )
    return text


@app.command()
def estimate(
    service: Annotated[str, typer.Option(help="Catalogue service, e.g. keycloak.")],
    plan: Annotated[str, typer.Option(help="Plan of the service, e.g. small.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", help="Tenant (default: your token's tenant)."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """What one more instance of a plan would cost per month, shared costs included.

    Example: cityctl billing estimate --service keycloak --plan small --tenant gent
    """
    with state.client() as client:
        result = client.get_json(
            f"{API}/billing/estimate", service=service, plan=plan, tenant=tenant
        )
    emit(
        result,
        output,
        [
            ("tenant", "TENANT"),
            ("service", "SERVICE"),
            ("plan", "PLAN"),
            ("plan_fee", "PLAN FEE"),
            ("service_share", "SERVICE SHARE"),
            ("platform_share", "PLATFORM SHARE"),
            ("monthly_total", "MONTHLY €"),
            ("additional", "ADDITIONAL €"),
            ("reference_period", "REFERENCE"),
        ],
    )


@app.command()
def report(
    period: OptionalPeriod = None,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", help="Only this tenant's statement, line by line."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """The statements of a month: totals per municipality, or one tenant's lines.

    An open month is computed from current usage (to date while it runs); a closed one is
    the frozen document with its digest.

    Example: cityctl billing report 2025-01 -o json
    """
    month = _period(period)
    with state.client() as client:
        if tenant is not None:
            path = f"{API}/billing/periods/{seg(month)}/statements/{seg(tenant)}"
        else:
            path = f"{API}/billing/periods/{seg(month)}/statements"
        document = client.get_json(path)
    if output is not Format.TABLE:
        emit(document, output)
        return
    stderr.print(
        f"Billing period {document.get('period')} ({document.get('status')}), amounts in "
        f"{document.get('currency', 'EUR')} excluding VAT; digest {document.get('digest')}.",
        highlight=False,
    )
    if tenant is not None:
        emit(document.get("lines", []), output, LINE_COLUMNS)
        stderr.print(f"Total: {document.get('totals', {}).get('total')}", highlight=False)
        return
    emit(document.get("statements", []), output, SUMMARY_COLUMNS)
    stderr.print(f"Total: {document.get('totals', {}).get('total')}", highlight=False)


@app.command()
def close(period: Period, yes: YesOpt = False, output: OutputOpt = Format.TABLE) -> None:
    """Close a month: freeze its statements with a digest (finance, operator).

    Example: cityctl billing close 2025-01 --yes
    """
    month = _period(period)
    confirm(f"close billing period {month} and freeze its statements", yes=yes)
    with state.client() as client:
        document = client.call("POST", f"{API}/billing/periods/{seg(month)}/close").json()
    stderr.print(
        f"Billing period {month} closed; digest {document.get('digest')}.", highlight=False
    )
    if output is Format.TABLE:
        emit(document.get("statements", []), output, SUMMARY_COLUMNS)
    else:
        emit(document, output)


@app.command()
def reopen(
    period: Period,
    reason: Annotated[str, typer.Option(help="Why it is reopened (kept in the audit log).")],
    yes: YesOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Reopen a closed month (operators only; audited; the closed set stays in history).

    Example: cityctl billing reopen 2025-01 --reason 'Price of medium corrected' --yes
    """
    month = _period(period)
    confirm(f"reopen the closed billing period {month}", yes=yes)
    with state.client() as client:
        result = client.call(
            "POST", f"{API}/billing/periods/{seg(month)}/reopen", json={"reason": reason}
        ).json()
    stderr.print(f"Billing period {month} reopened.")
    emit(
        result,
        output,
        [
            ("period", "PERIOD"),
            ("closed_digest", "CLOSED DIGEST"),
            ("reopened_by", "BY"),
            ("at", "AT"),
            ("reason", "REASON"),
        ],
    )


@app.command()
def closings(period: Period, output: OutputOpt = Format.TABLE) -> None:
    """Every closing of a month, oldest first, reopened ones included (finance, operator).

    Example: cityctl billing closings 2025-01
    """
    month = _period(period)
    with state.client() as client:
        items = client.list_all(f"{API}/billing/periods/{seg(month)}/closings")
    emit(
        items,
        output,
        [
            ("status", "STATUS"),
            ("digest", "DIGEST"),
            ("total", "TOTAL €"),
            ("closed_at", "CLOSED"),
            ("closed_by", "BY"),
            ("reopened_at", "REOPENED"),
            ("reopen_reason", "REASON"),
        ],
    )


@app.command()
def export(
    period: OptionalPeriod = None,
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-F",
            help="csv, csv-be (Excel in Belgium: ';' and decimal comma), xlsx or json.",
        ),
    ] = "csv",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Write here (default: the server's file name in the current folder; "
            "'-' writes to stdout).",
        ),
    ] = None,
) -> None:
    """Export a month's statements as a file for the finance department.

    Example: cityctl billing export 2025-01 --format xlsx
    """
    month = _period(period)
    if file_format not in ("csv", "csv-be", "xlsx", "json"):
        raise CliError(
            f"--format {file_format!r} is not an export format.",
            exit_code=ExitCode.USAGE,
            hint="Use csv, csv-be, xlsx or json.",
        )
    with state.client() as client:
        response = client.call(
            "GET",
            f"{API}/billing/periods/{seg(month)}/export",
            params={"format": file_format},
            headers={"Accept": "*/*"},
        )
    if file is not None and str(file) == "-":
        sys.stdout.buffer.write(response.content)
        sys.stdout.flush()
        return
    if file is None:
        match = re.search(r'filename="([^"/\\]+)"', response.headers.get("Content-Disposition", ""))
        file = Path(match.group(1) if match else f"statements-{month}.{file_format}")
    try:
        file.write_bytes(response.content)
    except OSError as exc:
        raise CliError(
            f"Cannot write {file}: {exc.strerror or exc}.",
            exit_code=ExitCode.USAGE,
            hint="Choose a writable path with --file.",
        ) from exc
    stderr.print(f"Wrote {file} ({len(response.content)} bytes).")
    typer.echo(str(file))
