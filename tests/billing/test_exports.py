from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from controlplane.billing import close_period
from controlplane.billing.errors import ExportInvalid
from controlplane.billing.exports import (
    ATTRIBUTION,
    EUR_FORMAT,
    LINE_COLUMNS,
    export,
    line_rows,
    read_csv,
)
from tests.billing.builders import NOW
from tests.billing.test_worked_example import worked_example


@pytest.fixture(scope="module")
def closed():  # type: ignore[no-untyped-def]
    return close_period(worked_example(), closed_by="finance", at=NOW)


def test_json_amounts_are_strings(closed) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(export(closed, "json"), parse_float=lambda _: pytest.fail("float in JSON"))
    assert body["totals"]["total"] == "4014.42"
    assert body["digest"] == closed.digest
    line = body["statements"][2]["lines"][0]
    assert (line["amount"], line["exact_share"], line["from"]) == (
        "58.42",
        "701/1440",
        "2024-04-16T07:30:00Z",
    )


def test_csv_is_rfc_4180(closed) -> None:  # type: ignore[no-untyped-def]
    data = export(closed, "csv")
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 1 + sum(len(s.lines) for s in closed.statements)
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert sum(Decimal(r["amount"]) for r in rows) == closed.totals.total
    assert read_csv(data) == [dict(r) | _nones(r) for r in line_rows(closed)]


def _nones(row: dict[str, object]) -> dict[str, object]:
    return {k: None for k, v in row.items() if v is None}


def test_belgian_csv_round_trips_to_equal_decimals(closed) -> None:  # type: ignore[no-untyped-def]
    data = export(closed, "csv-be")
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel then reads UTF-8
    header = data[3:].split(b"\r\n")[0].decode()
    assert header == ";".join(LINE_COLUMNS)
    assert b";58,42;" in data
    assert b"58.42" not in data
    assert read_csv(data, belgian=True) == list(line_rows(closed))


def test_belgian_csv_with_a_bad_number_names_row_and_column(closed) -> None:  # type: ignore[no-untyped-def]
    data = export(closed, "csv-be").replace(b";58,42;", b";58,4x;")
    with pytest.raises(ExportInvalid, match=r"row \d+, amount: '58,4x' is not a number"):
        read_csv(data, belgian=True)


def test_xlsx_totals_equal_the_json_export(closed) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(export(closed, "json"))
    book = load_workbook(io.BytesIO(export(closed, "xlsx")))
    assert book.sheetnames == ["Summary", "Lines", "Pools", "aalst", "denderleeuw", "haaltert"]

    summary = book["Summary"]
    header = [c.value for c in summary[1]]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in summary.iter_rows(values_only=True)}
    for statement in body["statements"]:
        row = rows[statement["tenant"]["slug"]]
        for column in ("plan_fees", "shared_services", "platform", "total"):
            assert _cents(row[column]) == Decimal(statement["totals"][column])
    assert _cents(rows["Total"]["total"]) == Decimal(body["totals"]["total"])
    total_cell = summary.cell(row=5, column=header.index("total") + 1)
    assert isinstance(total_cell.value, float | int)
    assert total_cell.number_format == EUR_FORMAT
    assert any(ATTRIBUTION in str(c.value) for row in summary.iter_rows() for c in row)

    lines = book["Lines"]
    amount = LINE_COLUMNS.index("amount")
    amounts = [r[amount] for r in lines.iter_rows(min_row=2, values_only=True)]
    assert sum(_cents(a) for a in amounts) == Decimal(body["totals"]["total"])
    tenant_sheet = list(book["haaltert"].iter_rows(values_only=True))
    assert tenant_sheet[-1][0] == "Total"
    assert _cents(tenant_sheet[-1][amount]) == Decimal(body["statements"][2]["totals"]["total"])


def _cents(value: object) -> Decimal:
    # Excel stores doubles; two decimals are exact enough to compare to the cent.
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_unknown_format_lists_the_formats(closed) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportInvalid) as caught:
        export(closed, "pdf")
    assert caught.value.hint == "use one of: csv, csv-be, xlsx, json"
