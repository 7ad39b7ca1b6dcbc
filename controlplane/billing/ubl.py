"""Peppol BIS Billing 3.0: one UBL 2.1 Invoice or CreditNote as XML bytes.

The input is a small frozen value of its own (:class:`UblDocument`) so that this writer does
not depend on how invoices are numbered, stored or built: the invoicing code maps its invoice
to a ``UblDocument`` and calls :func:`write_ubl`. Every derived amount (line net amounts, VAT
per category and rate, the document totals) is computed here, once, with the EN 16931 business
rules' rounding: line net amount = quantity x price rounded half-up to cents, VAT per
category = taxable amount x rate rounded half-up to cents, totals exact sums of those.

Parties are Belgian: the Peppol participant identifier is the enterprise number (KBO/BCE) under
ICD scheme 0208, used as endpoint, party identifier and legal registration identifier.

This module must not know about the database, tenants, FastAPI or Typer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from lxml import etree

from controlplane.errors import InvalidInput
from controlplane.identifiers import normalise_enterprise_number

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
#: ISO 6523 ICD of the Belgian Crossroads Bank for Enterprises number.
BELGIAN_ENTERPRISE_SCHEME = "0208"

_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
_ROOT_NS = {
    "invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "credit_note": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
_CENT = Decimal("0.01")


class UblDocumentInvalid(InvalidInput):
    """The invoice cannot be written as a Peppol BIS Billing 3.0 document."""

    title = "Invalid e-invoice"
    code = "ubl_invalid"


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class VatCategory(StrEnum):
    """UNCL 5305 VAT category codes used by EN 16931."""

    STANDARD = "S"
    ZERO = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    NOT_SUBJECT = "O"


class PaymentMeansCode(StrEnum):
    """UNCL 4461: 30 credit transfer, 58 SEPA credit transfer."""

    CREDIT_TRANSFER = "30"
    SEPA_CREDIT_TRANSFER = "58"


@dataclass(frozen=True)
class Party:
    """A Belgian legal entity: its enterprise number is its Peppol identifier."""

    name: str
    enterprise_number: str  # 10 digits, with or without dots: 0123.456.749
    street: str
    city: str
    postal_code: str
    country: str = "BE"
    vat_number: str | None = None  # BE0123456749; None for a party not registered for VAT
    iban: str | None = None
    bic: str | None = None


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    quantity: Decimal
    unit_code: str  # UN/ECE Rec. 20: C62 (one), MON (month), HUR (hour), GB …
    unit_price: Decimal  # net, excluding VAT; may have more than two decimals
    vat_category: VatCategory
    vat_rate: Decimal  # percent, 0 for E/Z/AE; ignored (not written) for O
    exemption_reason_code: str | None = None  # VATEX code, e.g. VATEX-EU-132-1G
    exemption_reason: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class BillingReference:
    """The invoice a credit note corrects."""

    number: str
    issue_date: date


@dataclass(frozen=True)
class UblDocument:
    kind: DocumentKind
    number: str
    issue_date: date
    due_date: date
    buyer_reference: str
    supplier: Party
    customer: Party
    payment_reference: str  # the Belgian structured communication, +++123/4567/89002+++
    lines: Sequence[Line]
    currency: str = "EUR"
    period: tuple[date, date] | None = None
    billing_reference: BillingReference | None = None
    payment_means: PaymentMeansCode = PaymentMeansCode.SEPA_CREDIT_TRANSFER
    payment_terms: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class VatBreakdown:
    category: VatCategory
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal
    exemption_reason_code: str | None = None
    exemption_reason: str | None = None


@dataclass(frozen=True)
class Totals:
    line_extension: Decimal
    tax_exclusive: Decimal
    tax: Decimal
    tax_inclusive: Decimal
    payable: Decimal
    breakdown: tuple[VatBreakdown, ...] = field(default_factory=tuple)


def cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up (away from zero) to cents."""
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


def line_net_amount(line: Line) -> Decimal:
    return cents(line.quantity * line.unit_price)


def enterprise_number_digits(number: str) -> str:
    """The 10 digits of a Belgian enterprise number, checked (mod 97); dots and spaces dropped."""
    try:
        return normalise_enterprise_number(number)
    except ValueError as exc:
        raise UblDocumentInvalid(
            detail=f"{number!r} is not a valid Belgian enterprise number",
            hint="10 digits starting with 0 or 1, the last two 97 - (first eight mod 97)",
        ) from exc


def totals(lines: Sequence[Line]) -> Totals:
    """Line net amounts, the VAT breakdown per category and rate, and the document totals."""
    groups: dict[tuple[VatCategory, Decimal, str | None, str | None], Decimal] = {}
    for line in lines:
        rate = Decimal(0) if line.vat_category is VatCategory.NOT_SUBJECT else line.vat_rate
        key = (line.vat_category, rate, line.exemption_reason_code, line.exemption_reason)
        groups[key] = groups.get(key, Decimal("0.00")) + line_net_amount(line)
    breakdown = tuple(
        VatBreakdown(
            category=category,
            rate=rate,
            taxable_amount=taxable,
            tax_amount=cents(taxable * rate / 100),
            exemption_reason_code=code,
            exemption_reason=reason,
        )
        for (category, rate, code, reason), taxable in groups.items()
    )
    line_extension = sum((line_net_amount(line) for line in lines), Decimal("0.00"))
    tax = sum((b.tax_amount for b in breakdown), Decimal("0.00"))
    return Totals(
        line_extension=line_extension,
        tax_exclusive=line_extension,
        tax=tax,
        tax_inclusive=line_extension + tax,
        payable=line_extension + tax,
        breakdown=breakdown,
    )


def _check(document: UblDocument) -> None:
    problems: list[str] = []
    if not document.lines:
        problems.append("a document needs at least one line")
    if document.kind is DocumentKind.CREDIT_NOTE and document.billing_reference is None:
        problems.append("a credit note needs the invoice it corrects (billing_reference)")
    if document.supplier.iban is None:
        problems.append("the supplier needs an IBAN for a credit transfer")
    for line in document.lines:
        exempt = line.vat_category in (VatCategory.EXEMPT, VatCategory.NOT_SUBJECT)
        if exempt and not (line.exemption_reason_code or line.exemption_reason):
            problems.append(f"line {line.id}: category {line.vat_category} needs a reason")
        if not exempt and (line.exemption_reason_code or line.exemption_reason):
            problems.append(f"line {line.id}: only E, AE, O lines carry an exemption reason")
        if line.vat_category is VatCategory.STANDARD and line.vat_rate <= 0:
            problems.append(f"line {line.id}: category S needs a positive rate")
        if line.vat_category in (VatCategory.EXEMPT, VatCategory.ZERO) and line.vat_rate != 0:
            problems.append(f"line {line.id}: category {line.vat_category} has rate 0")
    if problems:
        raise UblDocumentInvalid(
            detail="; ".join(problems), hint="fix the invoice before sending it over Peppol"
        )


class _Writer:
    def __init__(self, currency: str) -> None:
        self.currency = currency

    def cbc(self, parent: etree._Element, name: str, text: str, **attrs: str) -> etree._Element:
        element = etree.SubElement(parent, f"{{{_CBC}}}{name}", attrs)
        element.text = text
        return element

    def cac(self, parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{_CAC}}}{name}")

    def amount(self, parent: etree._Element, name: str, value: Decimal) -> None:
        self.cbc(parent, name, f"{cents(value):f}", currencyID=self.currency)

    def party(self, parent: etree._Element, role: str, party: Party) -> None:
        number = enterprise_number_digits(party.enterprise_number)
        node = self.cac(self.cac(parent, role), "Party")
        self.cbc(node, "EndpointID", number, schemeID=BELGIAN_ENTERPRISE_SCHEME)
        ident = self.cac(node, "PartyIdentification")
        self.cbc(ident, "ID", number, schemeID=BELGIAN_ENTERPRISE_SCHEME)
        self.cbc(self.cac(node, "PartyName"), "Name", party.name)
        address = self.cac(node, "PostalAddress")
        self.cbc(address, "StreetName", party.street)
        self.cbc(address, "CityName", party.city)
        self.cbc(address, "PostalZone", party.postal_code)
        self.cbc(self.cac(address, "Country"), "IdentificationCode", party.country)
        if party.vat_number:
            tax = self.cac(node, "PartyTaxScheme")
            self.cbc(tax, "CompanyID", party.vat_number.replace(".", "").replace(" ", ""))
            self.cbc(self.cac(tax, "TaxScheme"), "ID", "VAT")
        legal = self.cac(node, "PartyLegalEntity")
        self.cbc(legal, "RegistrationName", party.name)
        self.cbc(legal, "CompanyID", number, schemeID=BELGIAN_ENTERPRISE_SCHEME)

    def category(
        self,
        parent: etree._Element,
        name: str,
        category: VatCategory,
        rate: Decimal,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        node = self.cac(parent, name)
        self.cbc(node, "ID", category.value)
        if category is not VatCategory.NOT_SUBJECT:  # BR-O-05/BR-O-10: no rate for O
            self.cbc(node, "Percent", f"{rate.normalize():f}")
        if code:
            self.cbc(node, "TaxExemptionReasonCode", code)
        if reason:
            self.cbc(node, "TaxExemptionReason", reason)
        self.cbc(self.cac(node, "TaxScheme"), "ID", "VAT")


def write_ubl(document: UblDocument) -> bytes:
    """The document as Peppol BIS Billing 3.0 UBL 2.1 XML (UTF-8, with declaration)."""
    _check(document)
    credit = document.kind is DocumentKind.CREDIT_NOTE
    root_ns = _ROOT_NS[document.kind.value]
    root_name = "CreditNote" if credit else "Invoice"
    # The document namespace as default, as every Peppol sample writes it (lxml-stubs 0.5
    # types nsmap without the None key that lxml documents for the default namespace).
    nsmap: dict[str | None, str] = {None: root_ns, "cac": _CAC, "cbc": _CBC}
    root = etree.Element(f"{{{root_ns}}}{root_name}", nsmap=nsmap)  # type: ignore[arg-type]
    w = _Writer(document.currency)
    sums = totals(document.lines)

    w.cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    w.cbc(root, "ProfileID", PROFILE_ID)
    w.cbc(root, "ID", document.number)
    w.cbc(root, "IssueDate", document.issue_date.isoformat())
    if not credit:  # a UBL CreditNote has no DueDate: it goes in PaymentMeans
        w.cbc(root, "DueDate", document.due_date.isoformat())
    w.cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode", "381" if credit else "380")
    if document.note:
        w.cbc(root, "Note", document.note)
    w.cbc(root, "DocumentCurrencyCode", document.currency)
    w.cbc(root, "BuyerReference", document.buyer_reference)
    if document.period is not None:
        period = w.cac(root, "InvoicePeriod")
        w.cbc(period, "StartDate", document.period[0].isoformat())
        w.cbc(period, "EndDate", document.period[1].isoformat())
    if document.billing_reference is not None:
        ref = w.cac(w.cac(root, "BillingReference"), "InvoiceDocumentReference")
        w.cbc(ref, "ID", document.billing_reference.number)
        w.cbc(ref, "IssueDate", document.billing_reference.issue_date.isoformat())
    w.party(root, "AccountingSupplierParty", document.supplier)
    w.party(root, "AccountingCustomerParty", document.customer)

    means = w.cac(root, "PaymentMeans")
    w.cbc(means, "PaymentMeansCode", document.payment_means.value)
    if credit:
        w.cbc(means, "PaymentDueDate", document.due_date.isoformat())
    w.cbc(means, "PaymentID", document.payment_reference)
    account = w.cac(means, "PayeeFinancialAccount")
    w.cbc(account, "ID", (document.supplier.iban or "").replace(" ", ""))
    w.cbc(account, "Name", document.supplier.name)
    if document.supplier.bic:
        w.cbc(w.cac(account, "FinancialInstitutionBranch"), "ID", document.supplier.bic)
    if document.payment_terms:
        w.cbc(w.cac(root, "PaymentTerms"), "Note", document.payment_terms)

    tax_total = w.cac(root, "TaxTotal")
    w.amount(tax_total, "TaxAmount", sums.tax)
    for part in sums.breakdown:
        subtotal = w.cac(tax_total, "TaxSubtotal")
        w.amount(subtotal, "TaxableAmount", part.taxable_amount)
        w.amount(subtotal, "TaxAmount", part.tax_amount)
        w.category(
            subtotal,
            "TaxCategory",
            part.category,
            part.rate,
            part.exemption_reason_code,
            part.exemption_reason,
        )
    monetary = w.cac(root, "LegalMonetaryTotal")
    w.amount(monetary, "LineExtensionAmount", sums.line_extension)
    w.amount(monetary, "TaxExclusiveAmount", sums.tax_exclusive)
    w.amount(monetary, "TaxInclusiveAmount", sums.tax_inclusive)
    w.amount(monetary, "PayableAmount", sums.payable)

    for line in document.lines:
        node = w.cac(root, "CreditNoteLine" if credit else "InvoiceLine")
        w.cbc(node, "ID", line.id)
        w.cbc(
            node,
            "CreditedQuantity" if credit else "InvoicedQuantity",
            f"{line.quantity:f}",
            unitCode=line.unit_code,
        )
        w.amount(node, "LineExtensionAmount", line_net_amount(line))
        item = w.cac(node, "Item")
        if line.description:
            w.cbc(item, "Description", line.description)
        w.cbc(item, "Name", line.name)
        w.category(item, "ClassifiedTaxCategory", line.vat_category, line.vat_rate)
        price = w.cac(node, "Price")
        w.cbc(price, "PriceAmount", f"{line.unit_price:f}", currencyID=document.currency)

    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
