"""Exports a finance officer opens as-is, refused period changes audited, prices echoed as money.

Through the HTTP API on SQLite and PostgreSQL (the ``billed`` world of test_api_billing).
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from controlplane.billing.exports import DUTCH, LINE_COLUMNS, read_csv
from tests.api.conftest import World
from tests.billing import test_api_billing
from tests.billing.test_api_billing import API, PERIOD, _problem

billed = test_api_billing.billed  # the fixture: gent and brugge on demo plans in April 2024


def _export(client: TestClient, world: World, fmt: str, **params: str) -> tuple[str, bytes]:
    answer = client.get(
        f"{API}/periods/{PERIOD}/export",
        params={"format": fmt, **params},
        headers=world.auth("finance"),
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["content-disposition"], answer.content


def test_a_draft_says_draft_and_its_cut_off_and_a_closed_file_its_digest(
    client: TestClient,
    billed: World,
) -> None:
    disposition, data = _export(client, billed, "csv")
    assert disposition == f'attachment; filename="statements-{PERIOD}-draft.csv"'
    rows = read_csv(data)
    assert {(r["status"], r["digest"]) for r in rows} == {("draft", None)}
    # April 2024 is over: the draft is computed to its end, midnight in Brussels (summer time).
    assert {r["computed_to"] for r in rows} == {"2024-05-01T00:00:00+02:00"}
    # Brussels time, whole seconds; brugge's large plan started 16 April 00:00 in Brussels.
    assert "2024-04-16T00:00:00+02:00" in {r["from"] for r in rows}
    assert {r["instance"] for r in rows if r["kind"] == "plan_fee"} == {"forms"}

    closed = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance")).json()
    hex12 = closed["digest"].split(":")[-1][:12]
    disposition, data = _export(client, billed, "xlsx", lang="nl")
    assert disposition == f'attachment; filename="statements-{PERIOD}-{hex12}.xlsx"'
    book = load_workbook(io.BytesIO(data))
    assert closed["digest"] in (book.properties.keywords or "")
    lines = list(book["Lines"].iter_rows(values_only=True))
    assert list(lines[0]) == [DUTCH[c] for c in LINE_COLUMNS]
    digest_column = LINE_COLUMNS.index("digest")
    assert {r[digest_column] for r in lines[1:]} == {closed["digest"]}
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert (summary["Status"], summary["Digest"]) == ("afgesloten", closed["digest"])


def test_belgian_csv_opens_with_the_csv_module_and_every_share_is_a_number(
    client: TestClient,
    billed: World,
) -> None:
    document = client.get(
        f"{API}/periods/{PERIOD}/statements", headers=billed.auth("finance")
    ).json()
    _, data = _export(client, billed, "csv-be")

    class Belgian(csv.excel):
        delimiter = ";"

    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), dialect=Belgian))
    assert rows
    amounts = [Decimal(r["amount"].replace(",", ".")) for r in rows]
    shares = [Decimal(r["share"].replace(",", ".")) for r in rows]
    assert sum(amounts) == Decimal(document["totals"]["total"])
    assert all(Decimal(0) <= s <= Decimal(1) for s in shares)
    assert all("/" not in r["share"] and "," in r["share"] for r in rows)
    # brugge ran half of April: its plan line's share is exactly one half.
    half = [r for r in rows if r["tenant"] == "brugge" and r["kind"] == "plan_fee"]
    assert [r["share"] for r in half] == ["0,500000"]


def test_refused_close_and_reopen_are_audited(
    client: TestClient,
    billed: World,
    engine: Engine,
) -> None:
    # (Tenant roles are stopped earlier, by the API's gate, before any billing route runs.)
    reason = {"reason": "price corrected"}
    _problem(
        client.post(f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("operator"), json=reason),
        409,
        "period_not_closed",
    )
    client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance"))
    _problem(
        client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance")),
        409,
        "period_closed",
    )
    _problem(
        client.post(f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("finance"), json=reason),
        403,
        "forbidden",
    )
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action).in_(["billing.close", "billing.reopen"]))
            .order_by(col(AuditEvent.at))
        ).all()
    refused = [
        (e.action, e.outcome, e.details["code"], e.resource)
        for e in events
        if e.outcome == "refused"
    ]
    resource = f"billing-period:{PERIOD}"
    assert refused == [
        ("billing.reopen", "refused", "period_not_closed", resource),
        ("billing.close", "refused", "period_closed", resource),
        ("billing.reopen", "refused", "forbidden", resource),
    ]
    assert all(e.details["refusal"] for e in events if e.outcome == "refused")
    assert [e.details.get("reason") for e in events if e.action == "billing.reopen"] == [
        "price corrected",
        "price corrected",
    ]
    assert [e.outcome for e in events].count("success") == 1


def test_a_price_dated_in_a_closed_month_is_refused_naming_it(
    client: TestClient,
    billed: World,
) -> None:
    client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance"))
    price = {"service": "demo", "plan": "small", "monthly_price": "12.00"}
    body = _problem(
        client.post(
            f"{API}/prices",
            headers=billed.auth("finance"),
            json={**price, "effective_from": "2024-04-10"},
        ),
        409,
        "period_closed",
    )
    assert "closed billing period 2024-04" in body["detail"]
    assert "cityctl billing reopen 2024-04 --reason" in body["hint"]
    later = client.post(
        f"{API}/prices",
        headers=billed.auth("finance"),
        json={**price, "effective_from": "2024-05-01"},
    )
    assert later.status_code == 201, later.text


def test_prices_echo_in_the_money_format(client: TestClient, billed: World) -> None:
    echoed = []
    for day, amount in (("2024-06-01", "1E+3"), ("2024-07-01", "-0.00"), ("2024-08-01", "5.5")):
        answer = client.post(
            f"{API}/prices",
            headers=billed.auth("finance"),
            json={
                "service": "demo",
                "plan": "small",
                "monthly_price": amount,
                "effective_from": day,
            },
        )
        assert answer.status_code == 201, answer.text
        echoed.append(answer.json()["monthly_price"])
    assert echoed == ["1000.00", "0.00", "5.50"]
    listed = client.get(f"{API}/prices", headers=billed.auth("finance"), params={"limit": 200})
    finance = [p["monthly_price"] for p in listed.json()["items"] if p["source"] == "finance"]
    assert {"1000.00", "0.00", "5.50"} <= set(finance)
    assert not [p for p in finance if "E" in p or p.startswith("-0")]
