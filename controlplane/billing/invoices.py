"""Invoices and credit notes: what finance books and sends for a closed period.

Closing a period issues, per tenant with lines on its statement, one invoice: a number from
the gap-free series, the issue date (the close date in Brussels), the due date, the supplier
(from settings) and the customer (the tenant's master data), one line per statement line
(plan fees per instance, by the instance's name; pool shares), the VAT of each line and the
totals per VAT rate, and a Belgian structured communication as payment reference.

Reopening and closing again never edits an issued document: the second close issues a credit
note (a full reversal, referencing the invoice it reverses) and then a new invoice. Every
document is stored once with its digest and stays retrievable.

VAT: the category belongs to the *price line* (a plan's price, a pool's amount), found by
the most specific rule: ``plan:<service>/<plan>`` or ``pool:<name>``, then
``service:<service>``, then the default from settings. VAT is computed per rate on the sum of
the lines at that rate (EN 16931), rounded half up to the cent.

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import String, Uuid, column, select, table
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.invoice_records import (
    INVOICE_SERIES,
    DocumentKind,
    InvoiceRecord,
    InvoiceSeries,
    VatRuleRecord,
)
from controlplane.billing.money import CENT
from controlplane.billing.periods import BRUSSELS, Period
from controlplane.billing.statements import LineKind, Statement, StatementLine, StatementSet
from controlplane.db.locking import lock_row
from controlplane.errors import InvalidInput, NotFound
from controlplane.identifiers import format_enterprise_number, format_iban
from controlplane.settings import Settings, get_settings
from controlplane.tenants.models import Tenant

# Read-only view of provisioning's instances (names for the invoice lines).
_INSTANCES = table("instances", column("id", Uuid()), column("name", String()))

#: The EN 16931 VAT exemption reason codes (CEF VATEX list) this platform can use, with the
#: category each implies and the reason printed when none is given.
VATEX: dict[str, tuple[str, str]] = {
    "VATEX-EU-O": ("O", "Not subject to VAT"),
    "VATEX-EU-AE": ("AE", "Reverse charge"),
    "VATEX-EU-G": ("G", "Export outside the EU"),
    "VATEX-EU-IC": ("K", "Intra-community supply"),
    "VATEX-EU-132": ("E", "Exempt based on article 132 of Council Directive 2006/112/EC"),
    "VATEX-EU-132-1G": ("E", "Exempt based on article 132, 1 (g) of Directive 2006/112/EC"),
    "VATEX-EU-143": ("E", "Exempt based on article 143 of Council Directive 2006/112/EC"),
    "VATEX-EU-148": ("E", "Exempt based on article 148 of Council Directive 2006/112/EC"),
    "VATEX-EU-151": ("E", "Exempt based on article 151 of Council Directive 2006/112/EC"),
    "VATEX-EU-309": ("E", "Exempt based on article 309 of Council Directive 2006/112/EC"),
}


class InvoiceNotFound(NotFound):
    """There is no such invoice or credit note."""

    code = "invoice_not_found"


class VatRuleInvalid(InvalidInput):
    """The VAT rule is neither a rate nor a known exemption."""

    code = "vat_rule_invalid"


# -- structured communication --------------------------------------------------------------


def structured_communication(base: int) -> str:
    """The Belgian structured communication of ``base`` (at most ten digits).

    Ten digits, then two check digits: ``base`` modulo 97, or 97 when that is 0;
    written ``+++123/4567/89012+++``.
    """
    if not 0 <= base < 10**10:
        raise ValueError(f"{base} does not fit in the ten digits of a structured communication")
    check = base % 97 or 97
    digits = f"{base:010d}{check:02d}"
    return f"+++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++"


def is_structured_communication(text: str) -> bool:
    """Whether ``text`` is a valid structured communication (``+++`` or ``***`` delimited)."""
    stripped = text.strip()
    for mark in ("+++", "***"):
        if stripped.startswith(mark) and stripped.endswith(mark) and len(stripped) > 6:
            stripped = stripped[3:-3]
            break
    digits = stripped.replace("/", "")
    if len(digits) != 12 or not (digits.isascii() and digits.isdigit()):
        return False
    if stripped != f"{digits[:3]}/{digits[3:7]}/{digits[7:]}" and stripped != digits:
        return False
    return (int(digits[:10]) % 97 or 97) == int(digits[10:])


# -- VAT -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VatCategory:
    """A line's VAT: the EN 16931 category code with a rate, or an exemption with reason."""

    category: str
    rate: Decimal
    exemption_code: str | None = None
    exemption_reason: str | None = None

    @classmethod
    def of(
        cls, rate: Decimal | None, exemption_code: str | None, reason: str | None
    ) -> VatCategory:
        if exemption_code:
            known = VATEX.get(exemption_code)
            if known is None:
                raise VatRuleInvalid(
                    f"{exemption_code!r} is not a known VAT exemption code.",
                    hint="Use one of: " + ", ".join(VATEX),
                )
            return cls(known[0], Decimal("0.00"), exemption_code, reason or known[1])
        if rate is None or not Decimal(0) <= rate <= Decimal(100):
            raise VatRuleInvalid(f"VAT rate {rate!r} is not a percentage from 0 to 100.")
        rate = Decimal(rate).quantize(CENT)
        return cls("S" if rate > 0 else "Z", rate)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"category": self.category, "rate": str(self.rate)}
        if self.exemption_code:
            body["exemption_code"] = self.exemption_code
            body["exemption_reason"] = self.exemption_reason
        return body

    @property
    def key(self) -> tuple[str, Decimal, str]:
        return (self.category, self.rate, self.exemption_code or "")


def default_vat(settings: Settings) -> VatCategory:
    return VatCategory.of(
        settings.vat_default_rate,
        settings.vat_default_exemption or None,
        settings.vat_default_exemption_reason or None,
    )


def vat_subjects(line: StatementLine) -> list[str]:
    """The VAT rule subjects of a line, most specific first."""
    subjects: list[str] = []
    if line.kind is LineKind.PLAN_FEE and line.service and line.plan:
        subjects.append(f"plan:{line.service}/{line.plan}")
    if line.pool:
        subjects.append(f"pool:{line.pool}")
    if line.service:
        subjects.append(f"service:{line.service}")
    return subjects


def load_vat_rules(session: Session) -> dict[str, VatCategory]:
    return {
        r.subject: VatCategory.of(r.rate, r.exemption_code, r.exemption_reason)
        for r in session.exec(sm_select(VatRuleRecord)).all()
    }


def vat_of(
    line: StatementLine, rules: Mapping[str, VatCategory], default: VatCategory
) -> VatCategory:
    for subject in vat_subjects(line):
        if subject in rules:
            return rules[subject]
    return default


def vat_amount(base: Decimal, rate: Decimal) -> Decimal:
    """VAT on a taxable amount, half up to the cent."""
    return (base * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


# -- documents -----------------------------------------------------------------------------


def digest_of(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def number_text(number: int) -> str:
    return f"{number:010d}"


def supplier_block(settings: Settings) -> dict[str, Any]:
    number = settings.supplier_enterprise_number
    return {
        "name": settings.supplier_name,
        "enterprise_number": format_enterprise_number(number) if number else None,
        "vat_number": settings.supplier_vat_number or None,
        "address": {
            "street": settings.supplier_street or None,
            "postal_code": settings.supplier_postal_code or None,
            "city": settings.supplier_city or None,
            "country": settings.supplier_country,
        },
        "iban": format_iban(settings.supplier_iban) if settings.supplier_iban else None,
        "bic": settings.supplier_bic or None,
    }


def customer_block(tenant: Tenant) -> dict[str, Any]:
    digits = "".join(c for c in tenant.enterprise_number or "" if c.isdigit())
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "nis_code": tenant.nis_code,
        "enterprise_number": format_enterprise_number(digits) if len(digits) == 10 else None,
        "address": {
            "street": tenant.street,
            "postal_code": tenant.postal_code,
            "city": tenant.city,
            "country": tenant.country,
        },
    }


def invoice_lines(
    statement: Statement,
    *,
    names: Mapping[str, str],
    rules: Mapping[str, VatCategory],
    default: VatCategory,
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for position, line in enumerate(statement.lines, start=1):
        vat = vat_of(line, rules, default)
        name = names.get(line.instance_id or "")
        if line.kind is LineKind.PLAN_FEE:
            description = f"{name or line.instance_id}: {line.service} plan {line.plan}"
        else:
            description = f"share of cost pool {line.pool}"
        lines.append(
            {
                "position": position,
                "kind": str(line.kind),
                "description": description,
                "instance_id": line.instance_id,
                "instance_name": name,
                "service": line.service,
                "plan": line.plan,
                "pool": line.pool,
                "quantity": str(line.quantity),
                "unit": line.unit,
                "unit_price": str(line.unit_price),
                "amount": str(line.amount),
                "vat": vat.as_dict(),
            }
        )
    return lines


def vat_breakdown(lines: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], Decimal]:
    """VAT per category and rate on the sum of its lines; and the total VAT."""
    groups: dict[tuple[str, Decimal, str], tuple[dict[str, Any], Decimal]] = {}
    for line in lines:
        vat = line["vat"]
        key = (vat["category"], Decimal(vat["rate"]), vat.get("exemption_code", ""))
        _, base = groups.get(key, (vat, Decimal("0.00")))
        groups[key] = (vat, base + Decimal(line["amount"]))
    breakdown: list[dict[str, Any]] = []
    total = Decimal("0.00")
    for key in sorted(groups):
        vat, base = groups[key]
        amount = vat_amount(base, key[1])
        total += amount
        breakdown.append({**vat, "taxable_amount": str(base), "vat_amount": str(amount)})
    return breakdown, total


# -- numbering -----------------------------------------------------------------------------


def next_number(session: Session, series: str = INVOICE_SERIES) -> int:
    """Take the next number of ``series``, locking its counter until the transaction ends.

    The number is used in the same transaction: a rollback gives it back, a commit uses it,
    and a concurrent close waits on the counter row, so the series has no gaps or duplicates.
    """
    row = lock_row(session, InvoiceSeries, series)
    if row is None:
        try:
            with session.begin_nested():
                session.add(InvoiceSeries(series=series, last_number=0))
                session.flush()
        except IntegrityError:
            pass  # created by a concurrent transaction: lock it below
        row = lock_row(session, InvoiceSeries, series)
        assert row is not None
    row.last_number += 1
    session.add(row)
    session.flush()
    return row.last_number


# -- issuing -------------------------------------------------------------------------------


def instance_names(session: Session, statement_set: StatementSet) -> dict[str, str]:
    rows = session.execute(select(_INSTANCES.c.id, _INSTANCES.c.name)).all()
    wanted = {line.instance_id for s in statement_set.statements for line in s.lines}
    return {str(i): n for i, n in rows if str(i) in wanted}


def outstanding(session: Session, period: Period, tenant: str) -> InvoiceRecord | None:
    """The tenant's invoice of ``period`` that no credit note reverses (at most one)."""
    rows = session.exec(
        sm_select(InvoiceRecord).where(
            InvoiceRecord.period == str(period), InvoiceRecord.tenant == tenant
        )
    ).all()
    credited = {r.credits for r in rows if r.kind == DocumentKind.CREDIT_NOTE}
    open_ = [r for r in rows if r.kind == DocumentKind.INVOICE and r.number not in credited]
    return max(open_, key=lambda r: r.number) if open_ else None


def _store(
    session: Session,
    document: dict[str, Any],
    *,
    tenant: Tenant,
    issued_at: datetime,
    issued_by: str,
) -> InvoiceRecord:
    digest = digest_of(document)
    totals = document["totals"]
    record = InvoiceRecord(
        number=document["number"],
        kind=document["type"],
        period=document["period"],
        tenant=tenant.slug,
        tenant_id=tenant.id,
        credits=document.get("credits"),
        issue_date=date.fromisoformat(document["issue_date"]),
        due_date=date.fromisoformat(document["due_date"]),
        total_excl_vat=Decimal(totals["excl_vat"]),
        total_vat=Decimal(totals["vat"]),
        total_incl_vat=Decimal(totals["incl_vat"]),
        payment_reference=document["payment"]["reference"],
        statement_digest=document["statement_digest"],
        digest=digest,
        document={**document, "digest": digest},
        issued_at=issued_at,
        issued_by=issued_by,
    )
    session.add(record)
    session.flush()
    return record


def _dates(at: datetime, settings: Settings) -> tuple[date, date]:
    issued = at.astimezone(BRUSSELS).date()
    return issued, issued + timedelta(days=settings.invoice_due_days)


def _credit_note(
    session: Session,
    original: InvoiceRecord,
    *,
    tenant: Tenant,
    statement_digest: str,
    at: datetime,
    issued_by: str,
    settings: Settings,
) -> InvoiceRecord:
    number = next_number(session)
    issued, due = _dates(at, settings)
    source = original.document
    document = {
        **{k: v for k, v in source.items() if k != "digest"},
        "type": str(DocumentKind.CREDIT_NOTE),
        "number": number_text(number),
        "issue_date": issued.isoformat(),
        "due_date": due.isoformat(),
        "credits": original.number,
        "credits_issue_date": original.issue_date.isoformat(),
        "reason": f"billing period {original.period} was reopened and closed again",
        "statement_digest": statement_digest,
        "payment": {**source["payment"], "reference": structured_communication(number)},
    }
    return _store(session, document, tenant=tenant, issued_at=at, issued_by=issued_by)


def _invoice(
    session: Session,
    statement: Statement,
    *,
    period: Period,
    tenant: Tenant,
    statement_digest: str,
    names: Mapping[str, str],
    rules: Mapping[str, VatCategory],
    at: datetime,
    issued_by: str,
    settings: Settings,
) -> InvoiceRecord:
    number = next_number(session)
    issued, due = _dates(at, settings)
    lines = invoice_lines(statement, names=names, rules=rules, default=default_vat(settings))
    breakdown, vat_total = vat_breakdown(lines)
    excl = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
    supplier = supplier_block(settings)
    document = {
        "type": str(DocumentKind.INVOICE),
        "number": number_text(number),
        "period": str(period),
        "issue_date": issued.isoformat(),
        "due_date": due.isoformat(),
        "currency": "EUR",
        "supplier": supplier,
        "customer": customer_block(tenant),
        "lines": lines,
        "vat_breakdown": breakdown,
        "totals": {
            "excl_vat": str(excl),
            "vat": str(vat_total),
            "incl_vat": str(excl + vat_total),
        },
        "payment": {
            "reference": structured_communication(number),
            "iban": supplier["iban"],
            "bic": supplier["bic"],
        },
        "statement_digest": statement_digest,
    }
    return _store(session, document, tenant=tenant, issued_at=at, issued_by=issued_by)


def issue_for_closing(
    session: Session,
    closed: StatementSet,
    *,
    issued_by: str,
    settings: Settings | None = None,
) -> list[InvoiceRecord]:
    """Issue the documents of a period just closed, in the closing transaction.

    Per tenant (by NIS code, then slug): a credit note for its still outstanding invoice of
    the period (a close after a reopen), then a new invoice when its statement has lines.
    """
    settings = settings or get_settings()
    assert closed.closed_at is not None
    assert closed.digest is not None
    tenants = {t.slug: t for t in session.exec(sm_select(Tenant)).all()}
    statements = {s.tenant.slug: s for s in closed.statements if s.lines}
    earlier = {
        r.tenant
        for r in session.exec(
            sm_select(InvoiceRecord).where(InvoiceRecord.period == str(closed.period))
        ).all()
    }
    order = sorted(
        (set(statements) | earlier) & set(tenants),
        key=lambda slug: (tenants[slug].nis_code, slug),
    )
    names = instance_names(session, closed)
    rules = load_vat_rules(session)
    issued: list[InvoiceRecord] = []
    for slug in order:
        tenant = tenants[slug]
        previous = outstanding(session, closed.period, slug)
        if previous is not None:
            issued.append(
                _credit_note(
                    session,
                    previous,
                    tenant=tenant,
                    statement_digest=closed.digest,
                    at=closed.closed_at,
                    issued_by=issued_by,
                    settings=settings,
                )
            )
        if slug in statements:
            issued.append(
                _invoice(
                    session,
                    statements[slug],
                    period=closed.period,
                    tenant=tenant,
                    statement_digest=closed.digest,
                    names=names,
                    rules=rules,
                    at=closed.closed_at,
                    issued_by=issued_by,
                    settings=settings,
                )
            )
    return issued


# -- reading -------------------------------------------------------------------------------


def list_invoices(
    session: Session, *, period: Period | None = None, tenant: str | None = None
) -> list[InvoiceRecord]:
    """Issued invoices and credit notes, by number."""
    statement = sm_select(InvoiceRecord)
    if period is not None:
        statement = statement.where(InvoiceRecord.period == str(period))
    if tenant is not None:
        statement = statement.where(InvoiceRecord.tenant == tenant)
    return list(session.exec(statement.order_by(col(InvoiceRecord.number))).all())


def get_invoice(session: Session, number: str) -> InvoiceRecord:
    row = session.exec(sm_select(InvoiceRecord).where(InvoiceRecord.number == number)).first()
    if row is None:
        raise InvoiceNotFound(f"There is no invoice or credit note {number!r}.")
    return row
