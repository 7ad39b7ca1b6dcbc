"""Finance exports of a statement set: CSV, Belgian/Dutch Excel CSV, XLSX and JSON.

- ``csv``: RFC 4180 (comma, CRLF, quotes when needed), UTF-8, one row per statement line;
- ``csv-be``: what Excel expects in Belgium and the Netherlands: ``;`` as separator, decimal
  comma, UTF-8 with a byte-order mark (so Excel reads accents right); :func:`read_csv` parses
  it (and ``csv``) back to equal ``Decimal`` values;
- ``xlsx``: a summary sheet, a lines sheet, a pools sheet (the sharing keys, for audit) and one
  sheet per tenant; amounts are numbers with a euro number format, never text;
- ``json``: the statement set document, amounts as strings (``"123.45"``) so no float creeps in
  (the digested document itself: UTC timestamps, exact shares as fractions, English keys).

For people (CSV and XLSX): headers in English (the column keys, default) or Dutch (``lang="nl"``,
:data:`DUTCH`); timestamps in Brussels time with their offset and without fractions of a
second; shares as decimal numbers with six places (never ``1/8``, which Excel makes a date);
the instance's name next to its id; and on every line row the set's ``status``, ``digest``
(closed) and ``computed_to`` (the cut-off of the figures), so a plain table stays a plain
table. XLSX also has them in the Summary sheet and in the document properties (title,
subject, keywords), bold frozen headers and columns as wide as their text. :func:`file_name`
puts ``draft`` or the digest's first 12 hex digits in the file name.

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
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

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

#: Brussels: billing months are Brussels calendar months, and finance reads Brussels time.
BRUSSELS = ZoneInfo("Europe/Brussels")
#: Shares in files: a decimal number with six places (``0.125000``), never ``1/8``.
SHARE_PLACES = Decimal("0.000001")
SHARE_FORMAT = "0.000000"


class Lang(StrEnum):
    EN = "en"
    NL = "nl"


#: The columns of a line row (CSV and the XLSX lines sheets), as their English names.
LINE_COLUMNS = (
    "period",
    "tenant",
    "tenant_name",
    "nis_code",
    "kind",
    "service",
    "instance",
    "instance_id",
    "plan",
    "pool",
    "from",
    "to",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "share",
    "status",
    "digest",
    "computed_to",
)
DECIMAL_COLUMNS = frozenset({"quantity", "unit_price", "amount", "share"})
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
POOL_COLUMNS = (
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

#: The fixed Dutch vocabulary of every column and label (``--lang nl``); English is the key.
DUTCH: dict[str, str] = {
    "period": "Periode",
    "tenant": "Gemeente (code)",
    "tenant_name": "Gemeente",
    "nis_code": "NIS-code",
    "kind": "Soort",
    "service": "Dienst",
    "instance": "Instantie",
    "instance_id": "Instantie-id",
    "plan": "Plan",
    "pool": "Kostenpool",
    "from": "Van",
    "to": "Tot",
    "quantity": "Hoeveelheid",
    "unit": "Eenheid",
    "unit_price": "Eenheidsprijs excl. btw",
    "amount": "Bedrag excl. btw",
    "share": "Aandeel",
    "status": "Status",
    "digest": "Digest",
    "computed_to": "Berekend tot",
    "enterprise_number": "Ondernemingsnummer",
    "group": "Groep",
    "inhabitants": "Inwoners",
    "inhabitants_year": "Inwoners (jaar)",
    "plan_fees": "Planbedragen excl. btw",
    "shared_services": "Gedeelde diensten excl. btw",
    "platform": "Platform excl. btw",
    "total": "Totaal excl. btw",
    "key": "Verdeelsleutel",
    "pool_amount": "Poolbedrag excl. btw",
    "weight": "Gewicht",
    "note": "Opmerking",
    # labels
    "Total": "Totaal",
    "Period": "Periode",
    "Currency": "Munt",
    "Status": "Status",
    "Closed by": "Afgesloten door",
    "Digest": "Digest",
    "Computed to": "Berekend tot",
    "Amounts": "Bedragen",
    "exclusive of VAT": "exclusief btw",
    "Note": "Opmerking",
    "draft": "ontwerp",
    "closed": "afgesloten",
}


def label(key: str, lang: Lang | str = Lang.EN) -> str:
    """The header or label ``key`` in ``lang`` (English: the key itself)."""
    return DUTCH.get(key, key) if Lang(lang) is Lang.NL else key


def brussels(value: datetime | None) -> str | None:
    """ISO 8601 in Brussels time with its offset, whole seconds: ``2024-04-16T09:30:00+02:00``."""
    if value is None:
        return None
    return value.astimezone(BRUSSELS).replace(microsecond=0).isoformat()


def share_decimal(value: Fraction) -> Decimal:
    """An exact share as a decimal number with six places (``Fraction(1, 8)`` -> ``0.125000``)."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        SHARE_PLACES, rounding=ROUND_HALF_UP
    )


def status_note(statements: StatementSet) -> str:
    """What a reader must know about the figures: closed with its digest, or a draft's cut-off."""
    if statements.digest and str(statements.status) == "closed":
        return f"closed; digest {statements.digest}"
    return f"draft: figures computed to {brussels(statements.metered_until)}, not final"


def file_name(
    statements: StatementSet, fmt: ExportFormat | str, *, tenant: str | None = None
) -> str:
    """``statements-2026-11[-gent][-be]-draft.xlsx``; closed: ``…-<12 hex of the digest>.xlsx``."""
    chosen = ExportFormat(fmt)
    stem = f"statements-{statements.period}" + (f"-{tenant}" if tenant else "")
    if chosen is ExportFormat.CSV_BE:
        stem += "-be"
    if str(statements.status) == "closed" and statements.digest:
        stem += "-" + statements.digest.rpartition(":")[2][:12]
    else:
        stem += "-draft"
    return stem + FILE_SUFFIXES[chosen]


def export(
    statements: StatementSet,
    fmt: ExportFormat | str,
    *,
    lang: Lang | str = Lang.EN,
    names: Mapping[str, str] | None = None,
) -> bytes:
    """``statements`` in the format ``fmt`` (``csv``, ``csv-be``, ``xlsx`` or ``json``).

    ``lang`` picks the header vocabulary (``en`` or ``nl``; JSON keys stay English) and
    ``names`` maps instance ids to instance names for the ``instance`` column.
    """
    try:
        chosen = ExportFormat(fmt)
    except ValueError as exc:
        raise ExportInvalid(
            detail=f"unknown export format {fmt!r}",
            hint="use one of: " + ", ".join(f.value for f in ExportFormat),
        ) from exc
    try:
        language = Lang(lang)
    except ValueError as exc:
        raise ExportInvalid(
            detail=f"unknown export language {lang!r}",
            hint="use one of: " + ", ".join(x.value for x in Lang),
        ) from exc
    if chosen is ExportFormat.JSON:
        return to_json(statements)
    if chosen is ExportFormat.XLSX:
        return to_xlsx(statements, lang=language, names=names)
    return to_csv(statements, belgian=chosen is ExportFormat.CSV_BE, lang=language, names=names)


def to_json(statements: StatementSet) -> bytes:
    return (json.dumps(statements.as_dict(), indent=2, ensure_ascii=False) + "\n").encode()


def line_rows(
    statements: StatementSet, names: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """One dict per statement line, keyed by :data:`LINE_COLUMNS` (amounts as ``Decimal``)."""
    for statement in statements.statements:
        for line in statement.lines:
            yield _line_row(statements, statement, line, names)


def to_csv(
    statements: StatementSet,
    *,
    belgian: bool = False,
    lang: Lang | str = Lang.EN,
    names: Mapping[str, str] | None = None,
) -> bytes:
    """RFC 4180 CSV, or with ``belgian`` the ``;``/decimal-comma/BOM dialect for Excel.

    One header row, then one row per line: the status, digest and cut-off are columns of
    every row, so any CSV reader gets a clean table.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if belgian else ",", lineterminator="\r\n")
    writer.writerow(label(c, lang) for c in LINE_COLUMNS)
    for row in line_rows(statements, names):
        writer.writerow(_cell_text(row[c], c, belgian=belgian) for c in LINE_COLUMNS)
    return buffer.getvalue().encode("utf-8-sig" if belgian else "utf-8")


def read_csv(data: bytes, *, belgian: bool = False) -> list[dict[str, str | Decimal | None]]:
    """Parse :func:`to_csv` output back (either language), keyed by the English column names.

    Decimal columns come back as ``Decimal``, empty cells as None.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportInvalid(detail=f"the CSV file is not UTF-8: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if belgian else ",")
    header = tuple(next(reader, ()))
    if header not in {tuple(label(c, lang) for c in LINE_COLUMNS) for lang in Lang}:
        raise ExportInvalid(
            detail=f"the CSV header is {list(header)!r}, not the statement line columns",
            hint="read back a file written by the billing export"
            + (" with --format csv-be" if belgian else " with --format csv"),
        )
    rows: list[dict[str, str | Decimal | None]] = []
    for number, raw in enumerate(reader, start=2):
        row: dict[str, str | Decimal | None] = {}
        for column, cell in zip(LINE_COLUMNS, raw, strict=True):
            if cell == "":
                row[column] = None
            elif column in DECIMAL_COLUMNS:
                row[column] = _parse_decimal(cell, belgian=belgian, where=f"row {number}, {column}")
            else:
                row[column] = _restore(cell)
        rows.append(row)
    return rows


def to_xlsx(
    statements: StatementSet,
    *,
    lang: Lang | str = Lang.EN,
    names: Mapping[str, str] | None = None,
) -> bytes:
    # Write-only mode streams rows instead of keeping a cell graph: several times faster
    # for a fleet month (a sheet per tenant), so every cell gets its style as it is written.
    workbook = Workbook(write_only=True)
    # Fixed document dates keep the file the same for the same statements.
    stamp = statements.computed_at.astimezone(UTC).replace(tzinfo=None)
    workbook.properties.created = stamp
    workbook.properties.modified = stamp
    workbook.properties.title = (
        f"City Platform statements {statements.period} ({statements.status})"
    )
    workbook.properties.subject = status_note(statements)
    workbook.properties.keywords = f"status={statements.status}; digest={statements.digest or ''}"
    language = Lang(lang)
    _summary_sheet(_Table(workbook, "Summary", language), statements)
    _lines_sheet(_Table(workbook, "Lines", language), statements, statements.statements, names)
    _pools_sheet(_Table(workbook, "Pools", language), statements)
    used = {"Summary", "Lines", "Pools"}
    for statement in statements.statements:
        title = _sheet_title(statement.tenant.slug, used)
        used.add(title)
        _lines_sheet(_Table(workbook, title, language), statements, (statement,), names)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class _Table:
    """A write-only sheet with a bold, frozen header row and columns as wide as their text.

    Rows are collected first (widths must be known before the first row is written), then
    streamed with :meth:`write`.
    """

    def __init__(self, workbook: Workbook, title: str, lang: Lang) -> None:
        self.sheet = workbook.create_sheet(title)
        self.sheet.freeze_panes = "A2"
        self.lang = lang
        self.rows: list[tuple[list[Any], dict[int, str], bool]] = []

    def label(self, key: str) -> str:
        return label(key, self.lang)

    def header(self, keys: Iterable[str]) -> None:
        self.rows.append(([self.label(k) for k in keys], {}, True))

    def append(
        self, values: Iterable[Any], *, formats: dict[int, str] | None = None, bold: bool = False
    ) -> None:
        self.rows.append((list(values), formats or {}, bold))

    def write(self) -> None:
        widths: dict[int, int] = {}
        for values, _, _ in self.rows:
            for i, v in enumerate(values):
                if v is not None:
                    widths[i] = max(widths.get(i, 0), _width(v))
        for i, width in widths.items():
            self.sheet.column_dimensions[get_column_letter(i + 1)].width = min(width + 2, 80)
        for values, formats, bold in self.rows:
            self.sheet.append(
                [
                    self._cell(
                        v, bold=bold, number_format=formats.get(i) if v is not None else None
                    )
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


def _width(value: Any) -> int:
    if isinstance(value, Decimal):
        # "€ 1.234,56": the euro sign, the thousands separators and the sign.
        return len(f"{value:,.2f}") + 3
    return len(str(value))


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
    LINE_COLUMNS.index("share"): SHARE_FORMAT,
}


def _summary_sheet(table: _Table, statements: StatementSet) -> None:
    table.header(SUMMARY_COLUMNS)
    for statement in statements.statements:
        t = statement.tenant
        totals = statement.totals
        table.append(
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
    table.append(
        [
            table.label("Total"),
            *([None] * (len(SUMMARY_COLUMNS) - 5)),
            grand.plan_fees,
            grand.shared_services,
            grand.platform,
            grand.total,
        ],
        formats=_SUMMARY_FORMATS,
        bold=True,
    )
    table.append([])
    for key, value in (
        ("Period", str(statements.period)),
        ("Currency", statements.currency),
        ("Status", table.label(str(statements.status))),
        ("Closed by", statements.closed_by or ""),
        ("Digest", statements.digest or ""),
        ("Computed to", brussels(statements.metered_until) or ""),
        ("Note", status_note(statements)),
        ("Amounts", table.label("exclusive of VAT")),
        ("Note", ATTRIBUTION),
    ):
        table.append([table.label(key), value])
    table.write()


def _lines_sheet(
    table: _Table,
    statements: StatementSet,
    selected: tuple[Statement, ...],
    names: Mapping[str, str] | None,
) -> None:
    table.header(LINE_COLUMNS)
    total = Decimal("0.00")
    for statement in selected:
        for line in statement.lines:
            row = _line_row(statements, statement, line, names)
            total += line.amount
            table.append([row[c] for c in LINE_COLUMNS], formats=_LINE_FORMATS)
    if len(selected) == 1:
        amount_column = LINE_COLUMNS.index("amount")
        table.append(
            [table.label("Total"), *([None] * (amount_column - 1)), total],
            formats=_LINE_FORMATS,
            bold=True,
        )
    table.write()


_POOL_FORMATS = {4: EUR_FORMAT, 6: SHARE_FORMAT, 7: SHARE_FORMAT, 8: EUR_FORMAT}


def _pools_sheet(table: _Table, statements: StatementSet) -> None:
    table.header(POOL_COLUMNS)
    for allocation in statements.pools:
        p = allocation.pool
        head = [p.name, str(p.kind), p.service, p.key_label, allocation.amount]
        if not allocation.shares:
            table.append([*head, None, None, None, None, allocation.note], formats=_POOL_FORMATS)
        for share in allocation.shares:
            table.append(
                [
                    *head,
                    share.tenant,
                    share_decimal(share.weight),
                    share_decimal(share.share),
                    share.amount,
                    None,
                ],
                formats=_POOL_FORMATS,
            )
    table.write()


def _line_row(
    statements: StatementSet,
    statement: Statement,
    line: StatementLine,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    body = line.as_dict()
    instance = None
    if line.instance_id is not None:
        instance = (names or {}).get(line.instance_id)
    return {
        "period": str(statements.period),
        "tenant": statement.tenant.slug,
        "tenant_name": statement.tenant.name,
        "nis_code": statement.tenant.nis_code,
        "kind": body["kind"],
        "service": line.service,
        "instance": instance,
        "instance_id": line.instance_id,
        "plan": line.plan,
        "pool": line.pool,
        "from": brussels(line.start),
        "to": brussels(line.end),
        "quantity": line.quantity,
        "unit": line.unit,
        "unit_price": line.unit_price,
        "amount": line.amount,
        "share": share_decimal(line.exact_share),
        "status": str(statements.status),
        "digest": statements.digest,
        "computed_to": brussels(statements.metered_until),
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
