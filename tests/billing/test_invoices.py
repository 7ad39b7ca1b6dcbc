"""Invoices through the HTTP API, on SQLite and real PostgreSQL.

The world of ``test_api_billing``: gent runs demo/small all April 2024, brugge demo/large from
16 April, a platform pool of 300.00 is shared equally. Closing April issues one invoice per
tenant; reopening and closing again issues a credit note and a new invoice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.billing.invoice_records import VatRuleRecord
from controlplane.billing.invoices import is_structured_communication, structured_communication
from controlplane.identifiers import normalise_enterprise_number, normalise_iban
from controlplane.settings import Settings
from tests.api.conftest import World
from tests.billing import test_api_billing
from tests.billing.test_api_billing import _post_price, _problem, _tenant

billed = test_api_billing.billed  # the fixture: gent and brugge in April 2024

PERIOD = "2024-04"
API = "/api/v1/billing"


def _close(client: TestClient, world: World) -> None:
    answer = client.post(f"{API}/periods/{PERIOD}/close", headers=world.auth("finance"))
    assert answer.status_code == 201, answer.text


def _invoices(client: TestClient, world: World, who: str, **query: str) -> list[dict[str, Any]]:
    answer = client.get(f"{API}/invoices", headers=world.auth(who), params=query)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _document(client: TestClient, world: World, number: str, who: str = "finance") -> Any:
    answer = client.get(f"{API}/invoices/{number}", headers=world.auth(who))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_closing_issues_one_invoice_per_tenant_with_vat_per_rate(
    client: TestClient, billed: World, engine: Engine
) -> None:
    # demo/small at 10.05 (21 %: 2.1105 -> 2.11); the platform pool is not subject to VAT.
    assert _post_price(client, billed, "10.05").status_code == 201
    with Session(engine) as session:
        session.add(
            VatRuleRecord(subject="pool:platform", exemption_code="VATEX-EU-O", created_by="t")
        )
        gent = _tenant(session, "gent")
        gent.enterprise_number, gent.street, gent.postal_code, gent.city = (
            "0207451227",
            "Botermarkt 1",
            "9000",
            "Gent",
        )
        session.add(gent)
        session.commit()
    _close(client, billed)

    listed = _invoices(client, billed, "finance", period=PERIOD)
    assert [(i["number"], i["kind"], i["tenant"]) for i in listed] == [
        ("0000000001", "invoice", "brugge"),  # NIS 31005 before 44021
        ("0000000002", "invoice", "gent"),
    ]
    gent_invoice = _document(client, billed, "0000000002")
    assert gent_invoice["totals"] == {"excl_vat": "160.05", "vat": "2.11", "incl_vat": "162.16"}
    assert gent_invoice["vat_breakdown"] == [
        {
            "category": "O",
            "rate": "0.00",
            "exemption_code": "VATEX-EU-O",
            "exemption_reason": "Not subject to VAT",
            "taxable_amount": "150.00",
            "vat_amount": "0.00",
        },
        {"category": "S", "rate": "21.00", "taxable_amount": "10.05", "vat_amount": "2.11"},
    ]
    # The plan line names the instance; the customer block is the tenant's master data.
    assert gent_invoice["lines"][0]["instance_name"] == "forms"
    assert gent_invoice["lines"][0]["description"] == "forms: demo plan small"
    assert gent_invoice["customer"]["enterprise_number"] == "0207.451.227"
    assert gent_invoice["customer"]["address"] == {
        "street": "Botermarkt 1",
        "postal_code": "9000",
        "city": "Gent",
        "country": "BE",
    }
    assert gent_invoice["payment"]["reference"] == "+++000/0000/00202+++"
    assert is_structured_communication(gent_invoice["payment"]["reference"])
    assert gent_invoice["due_date"] > gent_invoice["issue_date"]
    assert gent_invoice["digest"].startswith("sha256:")


def test_reopen_and_close_issue_a_credit_note_and_a_new_invoice(
    client: TestClient, billed: World
) -> None:
    _close(client, billed)
    first = _document(client, billed, "0000000002")
    reason = {"reason": "price of demo/small corrected"}
    reopened = client.post(
        f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("operator"), json=reason
    )
    assert reopened.status_code == 200, reopened.text
    assert _post_price(client, billed, "12.00").status_code == 201
    _close(client, billed)

    listed = _invoices(client, billed, "finance", tenant="gent")
    assert [(i["number"], i["kind"], i["credits"]) for i in listed] == [
        ("0000000002", "invoice", None),
        ("0000000005", "credit_note", "0000000002"),  # brugge's are 3 and 4
        ("0000000006", "invoice", None),
    ]
    everything = [i["number"] for i in _invoices(client, billed, "finance")]
    assert everything == [f"{n:010d}" for n in range(1, 7)]  # no gaps, no duplicates
    # The old invoice is unchanged and still retrievable; the credit note reverses it fully.
    assert _document(client, billed, "0000000002") == first
    credit = _document(client, billed, "0000000005")
    assert credit["type"] == "credit_note"
    assert credit["totals"] == first["totals"]
    assert credit["lines"] == first["lines"]
    new = _document(client, billed, "0000000006")
    assert new["totals"]["excl_vat"] == "162.00"
    assert Decimal(new["totals"]["vat"]) == Decimal("0.21") * 162


def test_a_tenant_sees_only_its_own_invoices(client: TestClient, billed: World) -> None:
    _close(client, billed)
    for who in ("tenant-admin", "tenant-viewer"):
        assert [i["tenant"] for i in _invoices(client, billed, who)] == ["gent"]
        assert _document(client, billed, "0000000002", who)["customer"]["slug"] == "gent"
        brugge = client.get(f"{API}/invoices/0000000001", headers=billed.auth(who))
        _problem(brugge, 404, "invoice_not_found")
        other = client.get(f"{API}/invoices", headers=billed.auth(who), params={"tenant": "brugge"})
        _problem(other, 404, "tenant_not_found")
    assert [i["tenant"] for i in _invoices(client, billed, "other-admin")] == ["brugge"]
    _problem(
        client.get(f"{API}/invoices/9999999999", headers=billed.auth("finance")),
        404,
        "invoice_not_found",
    )


def test_tenant_master_data_for_invoices(client: TestClient, billed: World) -> None:
    body = {
        "name": "Aalst",
        "nis_code": "41002",
        "enterprise_number": "BE 0207.451.227",
        "street": "Grote Markt 3",
        "postal_code": "9300",
        "city": "Aalst",
    }
    created = client.post("/api/v1/tenants", headers=billed.auth("operator"), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["enterprise_number"] == "0207451227"
    assert created.json()["country"] == "BE"
    wrong = {**body, "name": "Asse", "nis_code": "23002", "enterprise_number": "0207.451.228"}
    answer = client.post("/api/v1/tenants", headers=billed.auth("operator"), json=wrong)
    problem = _problem(answer, 422, "tenant_invalid")
    assert problem["errors"][0]["location"] == "enterprise_number"


# -- identifiers and the payment reference -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("0207.451.227", "0207451227"),
        ("BE0207451227", "0207451227"),
        ("207 451 227", "0207451227"),
        ("0403.170.701", "0403170701"),
    ],
)
def test_good_enterprise_numbers(text: str, digits: str) -> None:
    assert normalise_enterprise_number(text) == digits


@pytest.mark.parametrize(
    "text", ["0207.451.228", "2207.451.227", "02074512", "0207.451.22x", "", "0207451227\n1"]
)
def test_bad_enterprise_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="not an enterprise number"):
        normalise_enterprise_number(text)


def test_iban_check_digits() -> None:
    assert normalise_iban("BE68 5390 0754 7034") == "BE68539007547034"
    assert normalise_iban("nl91abna0417164300") == "NL91ABNA0417164300"
    for bad in ("BE69 5390 0754 7034", "BE68 5390 0754 703", "XX", "BE68539007547034!"):
        with pytest.raises(ValueError, match="IBAN"):
            normalise_iban(bad)
    with pytest.raises(ValueError, match="IBAN"):
        Settings(supplier_iban="BE69 5390 0754 7034")
    settings = Settings(supplier_iban="BE68 5390 0754 7034", supplier_enterprise_number="207451227")
    assert settings.supplier_iban == "BE68539007547034"
    assert settings.supplier_enterprise_number == "0207451227"


def test_structured_communication_example() -> None:
    # 1234567890 mod 97 = 2.
    assert structured_communication(1234567890) == "+++123/4567/89002+++"
    assert structured_communication(97) == "+++000/0000/09797+++"  # 97 mod 97 = 0 -> 97
    assert not is_structured_communication("+++123/4567/89003+++")
    assert not is_structured_communication("+++123/4567/8900+++")


@given(st.integers(min_value=0, max_value=10**10 - 1))
def test_structured_communication_check_digits(base: int) -> None:
    text = structured_communication(base)
    assert is_structured_communication(text)
    digits = text.strip("+").replace("/", "")
    assert int(digits[:10]) == base
    assert int(digits[10:]) == (base % 97 or 97)
    assert 1 <= int(digits[10:]) <= 97
    # Any other check digits are refused.
    wrong = (int(digits[10:]) % 97) + 1
    assert not is_structured_communication(f"{digits[:10]}{wrong:02d}")
