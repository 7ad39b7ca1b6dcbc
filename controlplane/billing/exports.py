"""Finance exports of a statement set: CSV, Belgian/Dutch Excel CSV, XLSX and JSON.

- ``csv``: RFC 4180 (comma, CRLF, quotes when needed), UTF-8, one row per statement line;
- ``csv-be``: what Excel expects in Belgium and the Netherlands: ``;`` as separator, decimal
  comma, UTF-8 with a byte-order mark (so Excel reads accents right); :func:`read_csv` parses
  it (and ``csv``) back to equal ``Decimal`` values;
- ``xlsx``: a summary sheet, a lines sheet, a pools sheet (the sharing keys, for audit) and one
  sheet per tenant; amounts are numbers with a euro number format, never text;
- ``json``: the statement set document, amounts as strings (``"123.45"``) so no float creeps in.

Names come from tenants and operators, so a text cell may start with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return, which a spreadsheet reads as a formula (CSV injection,
OWASP). Text cells are neutralised: in CSV such a value gets a leading ``'`` (and
:func:`read_csv` removes it again, so the round trip is exact); in XLSX every text cell is
stored as a string cell (``data_type`` ``s``, quote prefix), never a formula. Numbers stay
numbers: a credit of -12.50 is a numeric cell, and numeric CSV columns are not prefixed.

Every export is bytes, ready for ``--out FILE`` or an HTTP response (see :data:`MEDIA_TYPES`).
This module must not know about the database, FastAPI or Typer.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from controlplane.billing.errors import ExportInvalid
from controlplane.billing.statements import Statement, StatementLine, StatementSet

#: Where inhabitants figures come from when tenants were imported from Statbel's data.
ATTRIBUTION = "Inhabitants: Source: Statbel, CC BY 4.0"
#: Euro, Dutch (Belgium) locale: Excel shows "€ 1.234,56" there and "€1,234.56" elsewhere.
EUR_FORMAT = "[$€-813] #,##0.00"
QUANTITY_FORMAT = "0.000000"


class ExportFormat(StrEnum):
    CSV = "csv"
    CSV_BE = "csv-be"
    XLSX = "xlsx"
    JSON = "json"


MEDIA_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.CSV_BE: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.JSON: "application/json",
}
FILE_SUFFIXES: dict[ExportFormat, str] = {
    ExportFormat.CSV: ".csv",
    ExportFormat.CSV_BE: ".csv",
    ExportFormat.XLSX: ".xlsx",
    ExportFormat.JSON: ".json",
}

#: The columns of a line row (CSV and the XLSX lines sheets).
LINE_COLUMNS = (
    "period",
    "tenant",
    "tenant_name",
    "nis_code",
    "kind",
    "service",
    "instance_id",
    "plan",
    "pool",
    "from",
    "to",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "exact_share",
)
DECIMAL_COLUMNS = frozenset({"quantity", "unit_price", "amount"})
SUMMARY_COLUMNS = (
    "tenant",
    "tenant_name",
    "nis_code",
    "enterprise_number",
    "group",
    "inhabitants",
    "inhabitants_year",
    "plan_fees",
    "shared_services",
    "platform",
    "total",
)
_MONEY_SUMMARY = ("plan_fees", "shared_services", "platform", "total")


def export(statements: StatementSet, fmt: ExportFormat | str) -> bytes:
    """``statements`` in the format ``fmt`` (``csv``, ``csv-be``, ``xlsx`` or ``json``)."""
    try:
        chosen = ExportFormat(fmt)
    except ValueError as exc:
        raise ExportInvalid(
            detail=f"unknown export format {fmt!r}",
            hint="use one of: " + ", ".join(f.value for f in ExportFormat),
        ) from exc
    if chosen is ExportFormat.JSON:
        return to_json(statements)
    if chosen is ExportFormat.XLSX:
        return to_xlsx(statements)
    return to_csv(statements, belgian=chosen is ExportFormat.CSV_BE)


def to_json(statements: StatementSet) -> bytes:
    return (json.dumps(statements.as_dict(), indent=2, ensure_ascii=False) + "\n").encode()


def line_rows(statements: StatementSet) -> Iterator[dict[str, Any]]:
    """One dict per statement line, keyed by :data:`LINE_COLUMNS` (amounts as ``Decimal``)."""
    for statement in statements.statements:
        for line in statement.lines:
            yield _line_row(statements, statement, line)


def to_csv(statements: StatementSet, *, belgian: bool = False) -> bytes:
    """RFC 4180 CSV, or with ``belgian`` the ``;``/decimal-comma/BOM dialect for Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if belgian else ",", lineterminator="\r\n")
    writer.writerow(LINE_COLUMNS)
    for row in line_rows(statements):
        writer.writerow(_cell_text(row[c], c, belgian=belgian) for c in LINE_COLUMNS)
    return buffer.getvalue().encode("utf-8-sig" if belgian else "utf-8")


def read_csv(data: bytes, *, belgian: bool = False) -> list[dict[str, str | Decimal | None]]:
    """Parse :func:`to_csv` output back: decimal columns as ``Decimal``, empty cells as None."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportInvalid(detail=f"the CSV file is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=";" if belgian else ",")
    if tuple(reader.fieldnames or ()) != LINE_COLUMNS:
        raise ExportInvalid(
            detail=f"the CSV header is {reader.fieldnames!r}, not the statement line columns",
            hint="read back a file written by the billing export"
            + (" with -o csv-be" if belgian else " with -o csv"),
        )
    rows: list[dict[str, str | Decimal | None]] = []
    for number, raw in enumerate(reader, start=2):
        row: dict[str, str | Decimal | None] = {}
        for column in LINE_COLUMNS:
            cell = raw[column]
            if cell == "":
                row[column] = None
            elif column in DECIMAL_COLUMNS:
                row[column] = _parse_decimal(cell, belgian=belgian, where=f"row {number}, {column}")
            else:
                row[column] = _restore(cell)
        rows.append(row)
    return rows


def to_xlsx(statements: StatementSet) -> bytes:
    # Write-only mode streams rows instead of keeping a cell graph: several times faster
    # for a fleet month (a sheet per tenant), so every cell gets its style as it is written.
    workbook = Workbook(write_only=True)
    # Fixed document dates keep the file the same for the same statements.
    stamp = statements.computed_at.astimezone(UTC).replace(tzinfo=None)
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    workbook.properties.title = f"City Platform statements {statements.period}"
    _summary_sheet(_sheet(workbook, "Summary"), statements)
    _lines_sheet(_sheet(workbook, "Lines"), statements, statements.statements)
    _pools_sheet(_sheet(workbook, "Pools"), statements)
    used = {"Summary", "Lines", "Pools"}
    for statement in statements.statements:
        title = _sheet_title(statement.tenant.slug, used)
        used.add(title)
        _lines_sheet(_sheet(workbook, title), statements, (statement,))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet(workbook: Workbook, title: str) -> Any:
    sheet = workbook.create_sheet(title)
    sheet.freeze_panes = "A2"
    return sheet


class _Row:
    """Styled cells for a write-only sheet."""

    def __init__(self, sheet: Any) -> None:
        self.sheet = sheet

    def header(self, values: Iterable[str]) -> None:
        self.sheet.append([self._cell(v, bold=True) for v in values])

    def append(self, values: Iterable[Any], *, formats: dict[int, str], bold: bool = False) -> None:
        self.sheet.append(
            [
                self._cell(v, bold=bold, number_format=formats.get(i) if v is not None else None)
                for i, v in enumerate(values)
            ]
        )

    def _cell(self, value: Any, *, bold: bool = False, number_format: str | None = None) -> Any:
        if isinstance(value, str):
            return text_cell(self.sheet, value, bold=bold)
        if not bold and number_format is None:
            return value
        cell = WriteOnlyCell(self.sheet, value=value)
        if bold:
            cell.font = _BOLD
        if number_format is not None:
            cell.number_format = number_format
        return cell


def text_cell(sheet: Any, value: str, *, bold: bool = False) -> Any:
    """A string cell, never a formula: openpyxl reads any text starting with ``=`` as one."""
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    if value.startswith(FORMULA_TRIGGERS):
        # Excel keeps the cell text even when someone edits it and presses Enter.
        cell.quotePrefix = True
    if bold:
        cell.font = _BOLD
    return cell


_BOLD = Font(bold=True)
_SUMMARY_FORMATS = {SUMMARY_COLUMNS.index(c): EUR_FORMAT for c in _MONEY_SUMMARY}
_LINE_FORMATS = {
    LINE_COLUMNS.index("quantity"): QUANTITY_FORMAT,
    LINE_COLUMNS.index("unit_price"): EUR_FORMAT,
    LINE_COLUMNS.index("amount"): EUR_FORMAT,
}


def _summary_sheet(sheet: Any, statements: StatementSet) -> None:
    rows = _Row(sheet)
    rows.header(SUMMARY_COLUMNS)
    for statement in statements.statements:
        t = statement.tenant
        totals = statement.totals
        rows.append(
            [
                t.slug,
                t.name,
                t.nis_code,
                t.enterprise_number,
                t.group,
                t.inhabitants,
                t.inhabitants_year,
                totals.plan_fees,
                totals.shared_services,
                totals.platform,
                totals.total,
            ],
            formats=_SUMMARY_FORMATS,
        )
    grand = statements.totals
    rows.append(
        [
            "Total",
            *([None] * (len(SUMMARY_COLUMNS) - 5)),
            grand.plan_fees,
            grand.shared_services,
            grand.platform,
            grand.total,
        ],
        formats=_SUMMARY_FORMATS,
        bold=True,
    )
    sheet.append([])
    for label, value in (
        ("Period", str(statements.period)),
        ("Currency", statements.currency),
        ("Status", str(statements.status)),
        ("Closed by", statements.closed_by or ""),
        ("Digest", statements.digest or ""),
        ("Amounts", "exclusive of VAT"),
        ("Note", ATTRIBUTION),
    ):
        sheet.append([text_cell(sheet, label), text_cell(sheet, value)])


def _lines_sheet(sheet: Any, statements: StatementSet, selected: tuple[Statement, ...]) -> None:
    rows = _Row(sheet)
    rows.header(LINE_COLUMNS)
    total = Decimal("0.00")
    for statement in selected:
        for line in statement.lines:
            row = _line_row(statements, statement, line)
            total += line.amount
            rows.append([row[c] for c in LINE_COLUMNS], formats=_LINE_FORMATS)
    if len(selected) == 1:
        amount_column = LINE_COLUMNS.index("amount")
        rows.append(
            ["Total", *([None] * (amount_column - 1)), total], formats=_LINE_FORMATS, bold=True
        )


_POOL_COLUMNS = (
    "pool",
    "kind",
    "service",
    "key",
    "pool_amount",
    "tenant",
    "weight",
    "share",
    "amount",
    "note",
)
_POOL_FORMATS = {4: EUR_FORMAT, 8: EUR_FORMAT}


def _pools_sheet(sheet: Any, statements: StatementSet) -> None:
    rows = _Row(sheet)
    rows.header(_POOL_COLUMNS)
    for allocation in statements.pools:
        p = allocation.pool
        head = [p.name, str(p.kind), p.service, p.key_label, allocation.amount]
        if not allocation.shares:
            rows.append([*head, None, None, None, None, allocation.note], formats=_POOL_FORMATS)
        for share in allocation.shares:
            rows.append(
                [*head, share.tenant, str(share.weight), str(share.share), share.amount, None],
                formats=_POOL_FORMATS,
            )


def _line_row(
    statements: StatementSet, statement: Statement, line: StatementLine
) -> dict[str, Any]:
    body = line.as_dict()
    return {
        "period": str(statements.period),
        "tenant": statement.tenant.slug,
        "tenant_name": statement.tenant.name,
        "nis_code": statement.tenant.nis_code,
        "kind": body["kind"],
        "service": line.service,
        "instance_id": line.instance_id,
        "plan": line.plan,
        "pool": line.pool,
        "from": body["from"],
        "to": body["to"],
        "quantity": line.quantity,
        "unit": line.unit,
        "unit_price": line.unit_price,
        "amount": line.amount,
        "exact_share": body["exact_share"],
    }


def _cell_text(value: object, column: str, *, belgian: bool) -> str:
    if value is None:
        return ""
    if column in DECIMAL_COLUMNS:
        return f"{value}".replace(".", ",") if belgian else str(value)
    return neutralise(str(value))


#: What makes a spreadsheet read a text cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula.

    Values that already start with ``'`` before a trigger get one more, so that
    :func:`_restore` can undo exactly one and ``'=x`` survives the round trip.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_TRIGGERS) else text


def _restore(cell: str) -> str:
    return (
        cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_TRIGGERS) else cell
    )


def _parse_decimal(cell: str, *, belgian: bool, where: str) -> Decimal:
    text = cell.replace(",", ".") if belgian else cell
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ExportInvalid(
            detail=f"{where}: {cell!r} is not a number"
            + (" with a decimal comma" if belgian else "")
        ) from exc


_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(slug: str, used: set[str]) -> str:
    # Excel: at most 31 characters, none of []:*?/\ and unique (case-insensitively).
    base = _SHEET_UNSAFE.sub("-", slug)[:31]
    title, n = base, 2
    lowered = {u.lower() for u in used}
    while title.lower() in lowered:
        suffix = f"~{n}"
        title = base[: 31 - len(suffix)] + suffix
        n += 1
    return title
