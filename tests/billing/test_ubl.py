"""Peppol BIS Billing 3.0 UBL documents, validated by the official CEN and Peppol rule sets.

The rule sets run on a real XSLT 3.0 processor (SaxonC-HE); they are fetched into a cache
outside the checkout by ``make test`` (``make peppol-rules``) or, failing that, on first use
here. A missing rule set fails these tests: it never skips them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from controlplane.billing.ubl import (
    BillingReference,
    DocumentKind,
    Line,
    Party,
    PaymentMeansCode,
    UblDocument,
    UblDocumentInvalid,
    VatCategory,
    enterprise_number_digits,
    totals,
    write_ubl,
)
from tests.billing.peppol import Finding, fatal, validate

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}

# The platform's operating organisation and a municipality; both numbers pass mod 97 (Stad
# Gent's is its real enterprise number), the IBAN passes the ISO 13616 check.
SUPPLIER = Party(
    name="City Platform cv",
    enterprise_number="0789.123.407",
    vat_number="BE0789123407",
    street="Kortrijksesteenweg 1085",
    city="Gent",
    postal_code="9051",
    iban="BE08068205231213",
    bic="GKCCBEBB",
)
GENT = Party(
    name="Stad Gent",
    enterprise_number="0207.451.227",
    vat_number="BE0207451227",
    street="Botermarkt 1",
    city="Gent",
    postal_code="9000",
)
LINES = (
    Line(
        id="1",
        name="Wachtrijbeheer (plan standard), instance gent-wachtrij",
        quantity=Decimal("1"),
        unit_code="MON",
        unit_price=Decimal("412.37"),
        vat_category=VatCategory.STANDARD,
        vat_rate=Decimal("21"),
    ),
    Line(
        id="2",
        name="Opslag boven het plan",
        quantity=Decimal("37.5"),
        unit_code="E34",  # UN/ECE Rec. 20: gigabyte
        unit_price=Decimal("0.0833"),
        vat_category=VatCategory.STANDARD,
        vat_rate=Decimal("21"),
    ),
    Line(
        id="3",
        name="Opleiding beheerders (erkende beroepsopleiding)",
        quantity=Decimal("2"),
        unit_code="DAY",
        unit_price=Decimal("450.00"),
        vat_category=VatCategory.EXEMPT,
        vat_rate=Decimal("0"),
        exemption_reason_code="VATEX-EU-132-1I",
        exemption_reason="Vrijgesteld van btw, art. 44 § 2, 4° WBTW",
    ),
)
INVOICE = UblDocument(
    kind=DocumentKind.INVOICE,
    number="CP-2026-000123",
    issue_date=date(2026, 11, 2),
    due_date=date(2026, 12, 2),
    buyer_reference="GENT-DIGIPOLIS-2026",
    supplier=SUPPLIER,
    customer=GENT,
    payment_reference="+++120/2611/00154+++",
    lines=LINES,
    period=(date(2026, 10, 1), date(2026, 10, 31)),
    payment_terms="Betaling binnen 30 dagen",
)
CREDIT_NOTE = UblDocument(
    kind=DocumentKind.CREDIT_NOTE,
    number="CP-2026-000124",
    issue_date=date(2026, 11, 9),
    due_date=date(2026, 11, 23),
    buyer_reference="GENT-DIGIPOLIS-2026",
    supplier=SUPPLIER,
    customer=GENT,
    payment_reference="+++120/2611/00154+++",
    lines=LINES[:1],
    period=(date(2026, 10, 1), date(2026, 10, 31)),
    billing_reference=BillingReference(number="CP-2026-000123", issue_date=date(2026, 11, 2)),
    payment_means=PaymentMeansCode.CREDIT_TRANSFER,
    payment_terms="Terugbetaling binnen 14 dagen",
)


def fatal_ids(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in fatal(findings)}


def text(xml: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(xml).xpath(path + "/text()", namespaces=NS)]


def edited(xml: bytes, path: str, value: str | None) -> bytes:
    """``xml`` with the first element at ``path`` given ``value``, or removed for None."""
    root = etree.fromstring(xml)
    node = root.xpath(path, namespaces=NS)[0]
    if value is None:
        node.getparent().remove(node)
    else:
        node.text = value
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_amounts_round_per_line_then_add_up_exactly() -> None:
    sums = totals(LINES)
    # 37.5 x 0.0833 = 3.12375 → 3.12; the 21 % base is 412.37 + 3.12.
    assert [(b.category, b.taxable_amount, b.tax_amount) for b in sums.breakdown] == [
        (VatCategory.STANDARD, Decimal("415.49"), Decimal("87.25")),
        (VatCategory.EXEMPT, Decimal("900.00"), Decimal("0.00")),
    ]
    assert sums.line_extension == Decimal("1315.49")
    assert sums.tax_inclusive == sums.payable == Decimal("1402.74")


def test_invoice_passes_the_cen_and_peppol_rules() -> None:
    xml = write_ubl(INVOICE)

    findings = validate(xml)

    assert findings == [], "\n".join(map(str, findings))
    assert text(xml, "cbc:CustomizationID") == [
        "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    ]
    assert text(xml, "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID") == ["0207451227"]
    assert text(xml, "cac:PaymentMeans/cbc:PaymentID") == ["+++120/2611/00154+++"]
    assert text(xml, "cac:LegalMonetaryTotal/cbc:PayableAmount") == ["1402.74"]


def test_credit_note_passes_the_cen_and_peppol_rules() -> None:
    xml = write_ubl(CREDIT_NOTE)

    findings = validate(xml)

    assert findings == [], "\n".join(map(str, findings))
    assert etree.QName(etree.fromstring(xml)).localname == "CreditNote"
    assert text(xml, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == [
        "CP-2026-000123"
    ]
    assert text(xml, "cac:LegalMonetaryTotal/cbc:PayableAmount") == ["498.97"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # Totals that do not add up: payable ≠ inclusive, VAT total ≠ sum of the breakdown.
        ("cac:LegalMonetaryTotal/cbc:PayableAmount", "1400.00", {"BR-CO-16"}),
        ("cac:TaxTotal/cbc:TaxAmount", "87.00", {"BR-CO-14", "BR-CO-15"}),
        # No buyer endpoint: nobody to deliver the invoice to over Peppol.
        ("cac:AccountingCustomerParty/cac:Party/cbc:EndpointID", None, {"PEPPOL-EN16931-R010"}),
        # A 0208 identifier whose mod-97 check digits are wrong.
        (
            "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID",
            "0207451228",
            {"PEPPOL-COMMON-R043"},
        ),
        # A line net amount that is not quantity x price, so the lines no longer add up.
        (
            "cac:InvoiceLine[1]/cbc:LineExtensionAmount",
            "412.00",
            {"BR-CO-10", "PEPPOL-EN16931-R120"},
        ),
    ],
)
def test_broken_invoice_gets_the_expected_fatal_rules(
    path: str, value: str | None, expected: set[str]
) -> None:
    broken = edited(write_ubl(INVOICE), path, value)

    found = fatal_ids(validate(broken))

    assert found == expected


def test_an_invalid_enterprise_number_is_refused_before_writing() -> None:
    assert enterprise_number_digits("0207.451.227") == "0207451227"
    with pytest.raises(UblDocumentInvalid, match="not a valid Belgian enterprise number"):
        write_ubl(replace(INVOICE, customer=replace(GENT, enterprise_number="0207.451.228")))
