"""Every issued invoice and credit note of a month as Peppol BIS Billing 3.0 UBL, through the API.

The world of ``test_api_billing`` (gent demo/small all April 2024, brugge demo/large from
16 April, a platform pool of 300.00 shared equally) with master data: both municipalities have
an enterprise number and an address, the plans are at the default 21 % and the platform pool
is VAT-exempt. April is closed, reopened, a price changes, and it is closed again: each of the
six documents (4 invoices, 2 credit notes) passes the official CEN EN 16931 and Peppol BIS
Billing 3.0 rule sets with no fatal finding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.billing import peppol
from controlplane.billing.invoice_records import VatRuleRecord
from controlplane.billing.ubl import UblDocumentInvalid
from controlplane.settings import get_settings
from tests.api.conftest import World
from tests.billing import test_api_billing
from tests.billing.peppol import fatal, validate
from tests.billing.test_api_billing import _post_price, _problem, _tenant

billed = test_api_billing.billed  # the fixture: gent and brugge in April 2024

PERIOD = "2024-04"
API = "/api/v1/billing"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
SUPPLIER = {
    "NAME": "City Platform cv",
    "ENTERPRISE_NUMBER": "0789.123.407",
    "VAT_NUMBER": "BE0789123407",
    "STREET": "Kortrijksesteenweg 1085",
    "POSTAL_CODE": "9051",
    "CITY": "Gent",
    "IBAN": "BE08 0682 0523 1213",
    "BIC": "GKCCBEBB",
}
ADDRESSES = {
    "gent": ("0207451227", "Botermarkt 1", "9000", "Gent"),
    "brugge": ("0207528134", "Burg 12", "8000", "Brugge"),
}


@pytest.fixture
def supplier(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The platform's operator as supplier, from the environment as in production."""
    for key, value in SUPPLIER.items():
        monkeypatch.setenv(f"CONTROLPLANE_SUPPLIER_{key}", value)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _master_data(engine: Engine, *slugs: str) -> None:
    with Session(engine) as session:
        for slug in slugs:
            tenant = _tenant(session, slug)
            (tenant.enterprise_number, tenant.street, tenant.postal_code, tenant.city) = ADDRESSES[
                slug
            ]
            session.add(tenant)
        session.add(
            VatRuleRecord(
                subject="pool:platform",
                exemption_code="VATEX-EU-132",
                exemption_reason="Vrijgesteld van btw, art. 44 WBTW",
                created_by="t",
            )
        )
        session.commit()


def _close(client: TestClient, world: World) -> None:
    answer = client.post(f"{API}/periods/{PERIOD}/close", headers=world.auth("finance"))
    assert answer.status_code == 201, answer.text


def _ubl(client: TestClient, world: World, number: str, who: str = "finance") -> bytes:
    answer = client.get(f"{API}/invoices/{number}/ubl", headers=world.auth(who))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    return answer.content


def _text(xml: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(xml).xpath(path + "/text()", namespaces=NS)]


def test_every_document_of_a_reopened_month_passes_the_peppol_rules(
    client: TestClient, billed: World, engine: Engine, supplier: None
) -> None:
    _master_data(engine, "gent", "brugge")
    _close(client, billed)
    reopened = client.post(
        f"{API}/periods/{PERIOD}/reopen",
        headers=billed.auth("operator"),
        json={"reason": "price of demo/small corrected"},
    )
    assert reopened.status_code == 200, reopened.text
    assert _post_price(client, billed, "12.00").status_code == 201
    _close(client, billed)

    listed = client.get(
        f"{API}/invoices", headers=billed.auth("finance"), params={"period": PERIOD}
    ).json()["items"]
    kinds = sorted(i["kind"] for i in listed)
    assert kinds == ["credit_note", "credit_note", "invoice", "invoice", "invoice", "invoice"]
    for item in listed:
        xml = _ubl(client, billed, item["number"])
        findings = validate(xml)
        assert fatal(findings) == [], (item, "\n".join(map(str, findings)))
        root = etree.QName(etree.fromstring(xml)).localname
        assert root == ("CreditNote" if item["kind"] == "credit_note" else "Invoice")
        assert _text(xml, "cbc:ID") == [item["number"]]
        assert _text(xml, "cac:LegalMonetaryTotal/cbc:PayableAmount") == [item["total_incl_vat"]]
        assert _text(xml, "cac:PaymentMeans/cbc:PaymentID") == [item["payment_reference"]]
        assert _text(xml, "cbc:BuyerReference") == [item["tenant"]]
        assert _text(xml, "cac:InvoicePeriod/cbc:StartDate") == ["2024-04-01"]
        assert _text(xml, "cac:InvoicePeriod/cbc:EndDate") == ["2024-04-30"]
        endpoint = _text(xml, "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID")
        assert endpoint == [ADDRESSES[item["tenant"]][0]]
        categories = set(_text(xml, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID"))
        assert categories == {"S", "E"}
        if item["kind"] == "credit_note":
            assert _text(xml, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == [
                item["credits"]
            ]


def test_ubl_has_the_invoice_access_rules(
    client: TestClient, billed: World, engine: Engine, supplier: None
) -> None:
    _master_data(engine, "gent", "brugge")
    _close(client, billed)
    # 0000000001 is brugge's, 0000000002 gent's (NIS order).
    assert b"<cbc:ID>0000000002</cbc:ID>" in _ubl(client, billed, "0000000002", "tenant-viewer")
    hidden = client.get(f"{API}/invoices/0000000001/ubl", headers=billed.auth("tenant-viewer"))
    _problem(hidden, 404, "invoice_not_found")
    _problem(
        client.get(f"{API}/invoices/9999999999/ubl", headers=billed.auth("finance")),
        404,
        "invoice_not_found",
    )


def test_a_customer_without_enterprise_number_is_refused_with_the_fix(
    client: TestClient, billed: World, engine: Engine, supplier: None
) -> None:
    _master_data(engine, "gent")  # brugge has no enterprise number nor address
    _close(client, billed)

    problem: dict[str, Any] = _problem(
        client.get(f"{API}/invoices/0000000001/ubl", headers=billed.auth("finance")),
        422,
        "ubl_invalid",
    )
    assert "brugge" in problem["detail"]
    assert "enterprise number" in problem["detail"]
    assert problem["hint"].startswith("cityctl tenant update brugge --enterprise-number")
    assert validate(_ubl(client, billed, "0000000002")) == []


def _line(position: int, quantity: str, price: str, amount: str, vat: dict[str, str]) -> Any:
    return {
        "position": position,
        "description": f"line {position}",
        "quantity": quantity,
        "unit": "share",
        "unit_price": price,
        "amount": amount,
        "vat": vat,
    }


DOCUMENT: dict[str, Any] = {
    "type": "invoice",
    "number": "0000000042",
    "period": "2024-04",
    "issue_date": "2024-05-01",
    "due_date": "2024-05-31",
    "currency": "EUR",
    "supplier": {
        "name": "City Platform cv",
        "enterprise_number": "0789.123.407",
        "vat_number": "BE0789123407",
        "address": {"street": "Kortrijksesteenweg 1085", "postal_code": "9051", "city": "Gent"},
        "iban": "BE08 0682 0523 1213",
    },
    "customer": {
        "slug": "gent",
        "name": "Gent",
        "enterprise_number": "0207.451.227",
        "address": {"street": "Botermarkt 1", "postal_code": "9000", "city": "Gent"},
    },
    # 100.00 in thirds is 33.34 + 33.33 + 33.33 (the pool adds up); 0.333333 x 100.00 rounds
    # to 33.33, so the 33.34 share is written as 1 x 33.34.
    "lines": [_line(1, "0.333333", "100.00", "33.34", {"category": "S", "rate": "21.00"})],
    "totals": {"excl_vat": "33.34", "vat": "7.00", "incl_vat": "40.34"},
    "payment": {"reference": "+++000/0000/04242+++"},
}


def test_a_share_that_does_not_multiply_out_is_one_unit_at_the_amount() -> None:
    xml = peppol.ubl_xml(DOCUMENT)

    assert validate(xml) == []
    assert _text(xml, "cac:InvoiceLine/cbc:InvoicedQuantity") == ["1"]
    assert _text(xml, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == ["33.34"]
    assert peppol.file_name(DOCUMENT) == "invoice-0000000042.xml"


def test_not_subject_to_vat_mixed_with_other_categories_is_refused() -> None:
    exempt = {"category": "O", "rate": "0.00", "exemption_code": "VATEX-EU-O"}
    mixed = {**DOCUMENT, "lines": [*DOCUMENT["lines"], _line(2, "1", "5.00", "5.00", exempt)]}

    with pytest.raises(UblDocumentInvalid, match="category O"):
        peppol.ubl_document(mixed)
