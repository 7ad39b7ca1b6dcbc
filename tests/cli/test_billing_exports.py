"""Finance exports opened as-is: `cityctl billing export --format … --lang nl` against a real API.

A municipality runs an instance this month; finance exports the draft statements in Dutch as a
Belgian CSV and as XLSX and opens them the way a finance tool would.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from controlplane.billing.exports import DUTCH, LINE_COLUMNS
from tests.cli.billing_world import last_month, new_token, open_platform, run_keycloak_since_40_days
from tests.cli.conftest import Platform, municipalities_csv

BRUSSELS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00$")


class Belgian(csv.excel):
    """What Excel writes and reads in Belgium: semicolons (and a decimal comma in numbers)."""

    delimiter = ";"


def _this_month() -> str:
    return datetime.now(ZoneInfo("Europe/Brussels")).strftime("%Y-%m")


@pytest.fixture(scope="module")
def finance(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    operator = open_platform(
        platform, municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent", "Aalst"))
    )
    admin = new_token(platform, operator, "gent-admin", "tenant-admin", "gent")
    run_keycloak_since_40_days(platform, admin)
    return new_token(platform, operator, "finance", "finance")


def test_belgian_csv_in_dutch_opens_with_numbers_names_and_brussels_times(
    platform: Platform, finance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    month = last_month()
    result = platform.ok(
        "billing", "export", month, "--format", "csv-be", "--lang", "nl", token=finance
    )
    written = Path(result.stdout.strip())
    # An open month is a draft, and its file name says so.
    assert written.name == f"statements-{month}-be-draft.csv"
    data = written.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), dialect=Belgian))
    header, body = rows[0], rows[1:]
    assert header == [DUTCH[c] for c in LINE_COLUMNS]
    assert {"Gemeente", "NIS-code", "Dienst", "Instantie", "Plan", "Bedrag excl. btw"} <= set(
        header
    )
    assert body
    col = {name: header.index(DUTCH[name]) for name in LINE_COLUMNS}
    for row in body:
        assert len(row) == len(header)
        # Every share and amount is a number once the decimal comma is a point: never 1/8.
        for name in ("share", "amount", "quantity", "unit_price"):
            assert "/" not in row[col[name]]
            Decimal(row[col[name]].replace(",", "."))
        assert re.fullmatch(r"-?\d+,\d{6}", row[col["share"]]), row[col["share"]]
        for name in ("from", "to", "computed_to"):
            assert row[col[name]] == "" or BRUSSELS_TIME.match(row[col[name]]), row[col[name]]
        assert (row[col["status"]], row[col["digest"]]) == ("draft", "")
        # A draft's figures are computed to a stated cut-off: here the end of the month.
        assert row[col["computed_to"]].endswith("T00:00:00" + row[col["computed_to"]][-6:])
    keycloak = [r for r in body if r[col["service"]] == "keycloak" and r[col["kind"]] == "plan_fee"]
    assert [r[col["instance"]] for r in keycloak] == ["loket"]
    assert keycloak[0][col["instance_id"]]


def test_xlsx_in_dutch_has_widths_a_frozen_bold_header_and_its_status(
    platform: Platform, finance: str, tmp_path: Path
) -> None:
    month = _this_month()
    target = tmp_path / "out.xlsx"
    platform.ok(
        "billing",
        "export",
        month,
        "--format",
        "xlsx",
        "--lang",
        "nl",
        "--file",
        str(target),
        token=finance,
    )
    book = load_workbook(io.BytesIO(target.read_bytes()))
    lines = book["Lines"]
    header = [c.value for c in lines[1]]
    assert header == [DUTCH[c] for c in LINE_COLUMNS]
    assert all(c.font.bold for c in lines[1])
    assert lines.freeze_panes == "A2"
    for index, title in enumerate(header, start=1):
        width = lines.column_dimensions[lines.cell(row=1, column=index).column_letter].width
        assert width >= len(title), title
    assert "draft" in (book.properties.keywords or "")
    assert "computed to" in (book.properties.subject or "")
    summary = [tuple(r) for r in book["Summary"].iter_rows(values_only=True)]
    labels = {r[0]: r[1] for r in summary if r and r[0]}
    assert labels["Status"] == "ontwerp"
    # The running month is computed to the start of this hour, and the file says so.
    cut_off = datetime.fromisoformat(labels["Berekend tot"])
    assert BRUSSELS_TIME.match(labels["Berekend tot"])
    assert (cut_off.minute, cut_off.second) == (0, 0)
    assert cut_off <= datetime.now(UTC) < cut_off + timedelta(hours=1)
    if cut_off.strftime("%d %H") == "01 00":
        # The first hour of a month (Brussels): computed to its first instant, nothing to bill.
        assert lines.max_row == 1
    else:
        share = lines.cell(row=2, column=header.index("Aandeel") + 1)
        assert isinstance(share.value, float | int)


def test_an_unknown_language_is_a_usage_error(platform: Platform, finance: str) -> None:
    refused = platform.run("billing", "export", "--lang", "fr", token=finance)
    assert refused.exit_code == 2
    assert "--lang en" in refused.stderr
