"""An issued invoice or credit note as a Peppol BIS Billing 3.0 document.

:func:`ubl_document` maps the stored JSON document (``invoices.py``) to the writer's
:class:`~controlplane.billing.ubl.UblDocument`; :func:`ubl_xml` writes it. Nothing is
recomputed from statements: the UBL says what the issued document says, and a mapping whose
totals would differ from the issued totals is refused rather than sent.

Decisions:

- BuyerReference (Peppol requires it or an order reference): the tenant's slug, e.g. ``gent``,
  stable and known to both sides; a document may carry its own ``buyer_reference``.
- A line whose quantity x unit price does not round to its amount (a pool share such as 1/3)
  is written as quantity 1 at the line amount, the share kept in the line description.
- Parties are identified by their enterprise number (scheme 0208): a customer without one, or
  a supplier without enterprise number, VAT number, address or IBAN, is refused with the
  command or setting that fixes it.
- VAT category O (not subject) cannot be mixed with other categories on one document
  (EN 16931 BR-O-11..14); such a document is refused. Categories K and G are not supported.

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from controlplane.billing.periods import Period
from controlplane.billing.ubl import (
    BillingReference,
    DocumentKind,
    Line,
    Party,
    UblDocument,
    UblDocumentInvalid,
    VatCategory,
    cents,
    totals,
    write_ubl,
)

#: UN/ECE Recommendation 20 unit codes of the statement units.
UNIT_CODES = {"month": "MON", "share": "C62", "hour": "HUR", "day": "DAY"}
_SUPPORTED = {c.value: c for c in VatCategory}


def file_name(document: Mapping[str, Any]) -> str:
    """``invoice-0000000042.xml`` or ``credit-note-0000000043.xml``."""
    kind = "credit-note" if document["type"] == "credit_note" else "invoice"
    return f"{kind}-{document['number']}.xml"


def _address(block: Mapping[str, Any]) -> Mapping[str, Any]:
    address: Mapping[str, Any] = block.get("address") or {}
    return address


def _supplier(block: Mapping[str, Any], *, with_vat: bool) -> Party:
    address = _address(block)
    missing = [
        setting
        for setting, value in (
            ("CONTROLPLANE_SUPPLIER_NAME", block.get("name")),
            ("CONTROLPLANE_SUPPLIER_ENTERPRISE_NUMBER", block.get("enterprise_number")),
            ("CONTROLPLANE_SUPPLIER_VAT_NUMBER", block.get("vat_number") or not with_vat),
            ("CONTROLPLANE_SUPPLIER_STREET", address.get("street")),
            ("CONTROLPLANE_SUPPLIER_POSTAL_CODE", address.get("postal_code")),
            ("CONTROLPLANE_SUPPLIER_CITY", address.get("city")),
            ("CONTROLPLANE_SUPPLIER_IBAN", block.get("iban")),
        )
        if not value
    ]
    if missing:
        raise UblDocumentInvalid(
            detail="The supplier on this document lacks what Peppol requires: "
            + ", ".join(missing)
            + " was not set when it was issued.",
            hint="Set " + ", ".join(missing) + " on the control plane, then reopen and close "
            "the period (cityctl billing reopen, cityctl billing close) to issue it again.",
        )
    return Party(
        name=block["name"],
        enterprise_number=block["enterprise_number"],
        vat_number=block.get("vat_number") if with_vat else None,
        street=address["street"],
        city=address["city"],
        postal_code=address["postal_code"],
        country=address.get("country") or "BE",
        iban=block["iban"],
        bic=block.get("bic") or None,
    )


def _customer(block: Mapping[str, Any], number: str) -> Party:
    address = _address(block)
    slug = block.get("slug", "?")
    missing = [
        option
        for option, value in (
            ("--enterprise-number …", block.get("enterprise_number")),
            ("--street …", address.get("street")),
            ("--postal-code …", address.get("postal_code")),
            ("--city …", address.get("city")),
        )
        if not value
    ]
    if missing:
        raise UblDocumentInvalid(
            detail=f"Document {number} cannot be sent over Peppol: tenant {slug!r} had no "
            + ", ".join(o.split()[0].removeprefix("--").replace("-", " ") for o in missing)
            + " when it was issued (Peppol identifies the buyer by its enterprise number).",
            hint=f"cityctl tenant update {slug} {' '.join(missing)}, then reopen and close the "
            "period (cityctl billing reopen, cityctl billing close) to issue it again.",
        )
    return Party(
        name=block["name"],
        enterprise_number=block["enterprise_number"],
        street=address["street"],
        city=address["city"],
        postal_code=address["postal_code"],
        country=address.get("country") or "BE",
    )


def _line(line: Mapping[str, Any]) -> Line:
    vat = line["vat"]
    category = _SUPPORTED.get(vat["category"])
    if category is None:
        raise UblDocumentInvalid(
            detail=f"VAT category {vat['category']} (line {line['position']}) is not supported "
            "in the Peppol export.",
            hint="Use a rate or an exemption of category E, AE or O for this price line.",
        )
    quantity, price, amount = (Decimal(line[k]) for k in ("quantity", "unit_price", "amount"))
    unit = UNIT_CODES.get(line.get("unit") or "", "C62")
    description = line["description"]
    if cents(quantity * price) != amount:
        description = f"{description} ({line['quantity']} {line.get('unit')} of {price:f})"
        quantity, price, unit = Decimal(1), amount, "C62"
    exempt = category in (VatCategory.EXEMPT, VatCategory.REVERSE_CHARGE, VatCategory.NOT_SUBJECT)
    return Line(
        id=str(line["position"]),
        name=description,
        quantity=quantity,
        unit_code=unit,
        unit_price=price,
        vat_category=category,
        vat_rate=Decimal(vat["rate"]),
        exemption_reason_code=vat.get("exemption_code") if exempt else None,
        exemption_reason=vat.get("exemption_reason") if exempt else None,
    )


def ubl_document(document: Mapping[str, Any]) -> UblDocument:
    """The stored invoice or credit note as a Peppol BIS Billing 3.0 document."""
    number = document["number"]
    lines = [_line(line) for line in document["lines"]]
    categories = {line.vat_category for line in lines}
    if VatCategory.NOT_SUBJECT in categories and len(categories) > 1:
        raise UblDocumentInvalid(
            detail=f"Document {number} mixes lines not subject to VAT (category O) with other "
            "VAT categories, which EN 16931 does not allow on one document.",
            hint="Give those price lines an exemption of category E (e.g. VATEX-EU-132) "
            "instead of VATEX-EU-O.",
        )
    credit = document["type"] == "credit_note"
    period = Period.parse(document["period"])
    first = period.first_day
    last = period.next.first_day - timedelta(days=1)
    ubl = UblDocument(
        kind=DocumentKind.CREDIT_NOTE if credit else DocumentKind.INVOICE,
        number=number,
        issue_date=date.fromisoformat(document["issue_date"]),
        due_date=date.fromisoformat(document["due_date"]),
        buyer_reference=document.get("buyer_reference") or document["customer"]["slug"],
        supplier=_supplier(document["supplier"], with_vat=categories != {VatCategory.NOT_SUBJECT}),
        customer=_customer(document["customer"], number),
        payment_reference=document["payment"]["reference"],
        lines=lines,
        currency=document.get("currency", "EUR"),
        period=(first, last),
        billing_reference=(
            BillingReference(
                document["credits"], date.fromisoformat(document["credits_issue_date"])
            )
            if credit
            else None
        ),
        note=document.get("reason") if credit else None,
    )
    sums = totals(lines)
    issued = document["totals"]
    if (sums.tax_exclusive, sums.tax) != (Decimal(issued["excl_vat"]), Decimal(issued["vat"])):
        raise UblDocumentInvalid(
            detail=f"Document {number}: the UBL totals ({sums.tax_exclusive}, VAT {sums.tax}) "
            f"differ from the issued totals ({issued['excl_vat']}, VAT {issued['vat']}).",
            hint="Report this as a bug: the issued document is authoritative.",
        )
    return ubl


def ubl_xml(document: Mapping[str, Any]) -> bytes:
    """The stored document as Peppol BIS Billing 3.0 UBL 2.1 XML."""
    return write_ubl(ubl_document(document))
