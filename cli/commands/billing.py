"""`cityctl billing estimate | report | close | reopen | export | closings | invoices | invoice`.

Finance reads the statements of a month (every municipality), closes and exports them;
an operator reopens a closed month; a municipality reads its own statement and asks what
a plan would cost before provisioning. Amounts stay the API's decimal strings: cityctl
never does arithmetic on money.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
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
        _print_flags([document])
        return
    emit(document.get("statements", []), output, SUMMARY_COLUMNS)
    stderr.print(f"Total: {document.get('totals', {}).get('total')}", highlight=False)
    _print_flags(document.get("statements", []))


def _print_flags(statements: list[dict[str, Any]]) -> None:
    """Say which statements are incomplete (a tenant role only ever gets its own)."""
    for statement in statements:
        for flag in statement.get("flags", []):
            stderr.print(
                f"{statement.get('tenant', {}).get('slug')}: {flag}; that share is not "
                "computed until the tenant's data is complete",
                highlight=False,
            )


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
            help="csv, csv-be (Excel in Belgium: ';' and decimal comma), xlsx, json, pdf "
            "(one statement per tenant) or ubl (one Peppol XML per invoice, closed months).",
        ),
    ] = "csv",
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            help="Header language: en (default) or nl (Gemeente, NIS-code, Dienst, …).",
        ),
    ] = "en",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Write here (default: the server's file name in the current folder; "
            "'-' writes to stdout).",
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="--format pdf or ubl: only this tenant's documents."),
    ] = None,
    period_flag: Annotated[
        str | None,
        typer.Option("--period", help="The billing month, YYYY-MM (same as the argument)."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="--format ubl: write the XML files here (default: .)."),
    ] = None,
) -> None:
    """Export a month's statements as a file for the finance department.

    A draft's file name contains "draft" and its figures are computed to the hour stated in
    the file; a closed month's file name carries its digest prefix.

    Example: cityctl billing export 2025-01 --format xlsx --lang nl
    """
    month = _period(period_flag or period)
    if file_format == "ubl":
        _export_ubl(month, tenant=tenant, output_dir=output_dir or Path("."))
        return
    if file_format == "pdf":
        _export_pdfs(month, tenant=tenant, lang=lang, file=file)
        return
    if file_format not in ("csv", "csv-be", "xlsx", "json"):
        raise CliError(
            f"--format {file_format!r} is not an export format.",
            exit_code=ExitCode.USAGE,
            hint="Use csv, csv-be, xlsx or json.",
        )
    _check_lang(lang)
    with state.client() as client:
        response = client.call(
            "GET",
            f"{API}/billing/periods/{seg(month)}/export",
            params={"format": file_format, "lang": lang},
            headers={"Accept": "*/*"},
        )
    if file is not None and str(file) == "-":
        sys.stdout.buffer.write(response.content)
        sys.stdout.flush()
        return
    _save_download(
        file or _attachment_name(response.headers, f"statements-{month}.{file_format}"),
        response.content,
    )


def _check_lang(lang: str) -> None:
    if lang not in ("en", "nl"):
        raise CliError(
            f"--lang {lang!r} is not an export language.",
            exit_code=ExitCode.USAGE,
            hint="Use --lang en or --lang nl.",
        )


def _attachment_name(headers: Mapping[str, str], default: str) -> Path:
    """The file name the API gave in Content-Disposition (no folders), else ``default``."""
    match = re.search(r'filename="([^"/\\]+)"', headers.get("Content-Disposition", ""))
    return Path(match.group(1) if match else default)


def _write_file(target: Path, content: bytes, *, hint: str) -> None:
    try:
        target.write_bytes(content)
    except OSError as exc:
        raise CliError(
            f"Cannot write {target}: {exc.strerror or exc}.", exit_code=ExitCode.USAGE, hint=hint
        ) from exc


def _save_download(target: Path, content: bytes) -> None:
    """Write one downloaded file, say so on stderr and print its path on stdout."""
    _write_file(target, content, hint="Choose a writable path with --file.")
    stderr.print(f"Wrote {target} ({len(content)} bytes).")
    typer.echo(str(target))


def _export_pdfs(month: str, *, tenant: str | None, lang: str, file: Path | None) -> None:
    """One PDF statement per tenant (every tenant the token may read, or --tenant)."""
    _check_lang(lang)
    with state.client() as client:
        if tenant is not None:
            slugs = [tenant]
        else:
            document = client.call("GET", f"{API}/billing/periods/{seg(month)}/statements").json()
            slugs = [s["tenant"]["slug"] for s in document["statements"]]
        if file is not None and len(slugs) != 1:
            raise CliError(
                f"{len(slugs)} statements cannot go into one --file.",
                exit_code=ExitCode.USAGE,
                hint="Add --tenant SLUG, or leave out --file to write one PDF per tenant.",
            )
        for slug in slugs:
            response = client.call(
                "GET",
                f"{API}/billing/periods/{seg(month)}/statements/{seg(slug)}/pdf",
                params={"lang": lang},
                headers={"Accept": "application/pdf"},
            )
            _save_download(
                file or _attachment_name(response.headers, f"statement-{slug}-{month}.pdf"),
                response.content,
            )


def _export_ubl(month: str, *, tenant: str | None, output_dir: Path) -> None:
    """One Peppol UBL file per invoice and credit note issued for ``month``."""
    params: dict[str, Any] = {"period": month, **({"tenant": tenant} if tenant else {})}
    refused: list[str] = []
    with state.client() as client:
        items = client.list_all(f"{API}/billing/invoices", **params)
        if not items:
            status = client.get_json(f"{API}/billing/periods/{seg(month)}/statements")
            if status.get("status") != "closed":
                raise CliError(
                    f"Billing period {month} is open (draft): it has no invoices yet.",
                    exit_code=ExitCode.CONFLICT,
                    hint=f"Close it first: cityctl billing close {month}",
                )
            raise CliError(
                f"No invoices were issued for {month}" + (f" to {tenant}." if tenant else "."),
                exit_code=ExitCode.NOT_FOUND,
                hint="cityctl billing invoices --period " + month + " lists what was issued.",
            )
        output_dir.mkdir(parents=True, exist_ok=True)
        for item in items:
            number = item["number"]
            try:
                response = client.call(
                    "GET",
                    f"{API}/billing/invoices/{seg(number)}/ubl",
                    headers={"Accept": "application/xml"},
                )
            except CliError as exc:
                if exc.exit_code is not ExitCode.USAGE:
                    raise
                stderr.print(f"Not written: {exc.message} Hint: {exc.hint}", highlight=False)
                refused.append(number)
                continue
            kind = "credit-note" if item["kind"] == "credit_note" else "invoice"
            target = output_dir / f"{kind}-{number}.xml"
            _write_file(
                target, response.content, hint="Choose a writable folder with --output-dir."
            )
            typer.echo(str(target))
    stderr.print(f"Wrote {len(items) - len(refused)} UBL file(s) for {month}.", highlight=False)
    if refused:
        raise CliError(
            f"{len(refused)} document(s) could not be written as UBL: {', '.join(refused)}.",
            exit_code=ExitCode.USAGE,
            hint="Fix what each message above names, then reopen and close the period.",
        )


INVOICE_COLUMNS = [
    ("number", "NUMBER"),
    ("kind", "KIND"),
    ("period", "PERIOD"),
    ("tenant", "TENANT"),
    ("credits", "CREDITS"),
    ("issue_date", "ISSUED"),
    ("due_date", "DUE"),
    ("total_excl_vat", "EXCL. VAT €"),
    ("total_vat", "VAT €"),
    ("total_incl_vat", "INCL. VAT €"),
    ("payment_reference", "PAYMENT REFERENCE"),
]
INVOICE_LINE_COLUMNS = [
    ("position", "#"),
    ("description", "DESCRIPTION"),
    ("quantity", "QUANTITY"),
    ("unit", "UNIT"),
    ("unit_price", "UNIT PRICE"),
    ("vat.rate", "VAT %"),
    ("vat.category", "VAT CAT."),
    ("amount", "AMOUNT €"),
]


@app.command()
def invoices(
    period: Annotated[
        str | None, typer.Option("--period", help="Only this month, YYYY-MM.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (slug).")] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Issued invoices and credit notes, by number (a tenant role: its own tenant's).

    Example: cityctl billing invoices --period 2025-01 --tenant gent
    """
    params: dict[str, Any] = {"period": None if period is None else _period(period)}
    params["tenant"] = tenant
    with state.client() as client:
        items = client.list_all(
            f"{API}/billing/invoices", **{k: v for k, v in params.items() if v is not None}
        )
    emit(items, output, INVOICE_COLUMNS, empty="No invoices issued (yet).")


@app.command()
def invoice(
    number: Annotated[str, typer.Argument(help="The invoice or credit note number.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """One invoice or credit note as issued: parties, lines, VAT per rate, totals, payment.

    Example: cityctl billing invoice 0000000001 -o json
    """
    with state.client() as client:
        document = client.call("GET", f"{API}/billing/invoices/{seg(number)}").json()
    if output is not Format.TABLE:
        emit(document, output)
        return
    kind = "Credit note" if document["type"] == "credit_note" else "Invoice"
    customer = document["customer"]
    stderr.print(
        f"{kind} {document['number']} — {customer['name']} ({customer['slug']}), period "
        f"{document['period']}, issued {document['issue_date']}, due {document['due_date']}"
    )
    if document.get("credits"):
        stderr.print(f"Reverses invoice {document['credits']}.")
    emit(document["lines"], output, INVOICE_LINE_COLUMNS)
    totals = document["totals"]
    stderr.print(
        f"Excl. VAT {totals['excl_vat']} €, VAT {totals['vat']} €, incl. VAT "
        f"{totals['incl_vat']} €. Pay with {document['payment']['reference']}"
        + (f" to {document['payment']['iban']}" if document["payment"].get("iban") else "")
    )
