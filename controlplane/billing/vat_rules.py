"""Finance's VAT rules: which VAT category a plan, a pool or a whole service is invoiced with.

A rule's subject is ``plan:<service>/<plan>``, ``pool:<name>`` or ``service:<service>``; when
an invoice is issued the most specific rule of a line wins, else the settings' default
(:func:`controlplane.billing.invoices.vat_of`). A rule is a rate (0-100, two decimals) or an
EN 16931 VATEX exemption code with a reason. Changing or removing a rule only affects
invoices issued afterwards: an issued invoice is an immutable document.

Every write here is flushed, never committed: the caller commits once, with its audit event.

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing import inputs, pricing
from controlplane.billing.invoice_records import VatRuleRecord
from controlplane.billing.invoices import VATEX, VatCategory, VatRuleInvalid
from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem, InvalidInput

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
SUBJECT = re.compile(
    rf"plan:(?P<service>{_LABEL})/(?P<plan>{_LABEL})|(?P<kind>pool|service):(?P<name>{_LABEL})"
)
SUBJECT_FORMS = "plan:<service>/<plan>, pool:<name> or service:<service>"


class VatSubjectInvalid(InvalidInput):
    """The subject is not a plan, pool or service of this platform."""

    code = "vat_subject_invalid"


def parse_subject(subject: str) -> re.Match[str]:
    found = SUBJECT.fullmatch(subject)
    if found is None:
        raise VatSubjectInvalid(
            f"{subject!r} is not a VAT rule subject.",
            errors=[ErrorItem("subject", f"expected {SUBJECT_FORMS}")],
            hint="e.g. plan:keycloak/small, pool:keycloak-shared or service:keycloak",
        )
    return found


def check_subject_exists(session: Session, subject: str) -> None:
    """Refuse a subject whose service, plan or pool this platform does not know."""
    found = parse_subject(subject)
    catalogue = inputs.load_catalogue(session)
    services = {s for s, _ in catalogue.plans}
    if found["kind"] == "pool":
        pools = {r.name for r in pricing.list_pools(session)}
        pools |= {p.name for p in pricing.catalogue_pools(session)}
        if found["name"] not in pools:
            raise VatSubjectInvalid(
                f"There is no cost pool {found['name']!r}.",
                errors=[ErrorItem("subject", f"unknown pool {found['name']!r}")],
                hint="Pools are finance's (GET /api/v1/billing/pools) and <service>-shared.",
            )
        return
    name = found["service"] or found["name"]
    if name not in services:
        raise VatSubjectInvalid(
            f"There is no service {name!r} in the published catalogue.",
            errors=[ErrorItem("subject", f"unknown service {name!r}")],
            hint="`cityctl catalog list` lists the services.",
        )
    if found["plan"] and (name, found["plan"]) not in catalogue.plans:
        known = ", ".join(sorted(p for s, p in catalogue.plans if s == name))
        raise VatSubjectInvalid(
            f"Service {name} has no plan {found['plan']!r}.",
            errors=[ErrorItem("subject", f"unknown plan {found['plan']!r}; plans: {known}")],
            hint=f"`cityctl catalog show {name}` lists its plans.",
        )


def category_of(
    rate: Decimal | None, exemption_code: str | None, exemption_reason: str | None
) -> VatCategory:
    """A rule's category: exactly a rate, or an exemption code with a reason."""
    if (rate is None) == (exemption_code is None):
        raise VatRuleInvalid(
            "A VAT rule is either a rate or an exemption code with a reason.",
            hint="Give `rate`, or `exemption_code` and `exemption_reason`.",
        )
    if exemption_code is not None and not (exemption_reason or "").strip():
        raise VatRuleInvalid(
            f"The exemption {exemption_code} needs a reason (printed on the invoice).",
            errors=[ErrorItem("exemption_reason", "required with exemption_code")],
        )
    if exemption_code is None and exemption_reason is not None:
        raise VatRuleInvalid(
            "An exemption reason goes with an exemption code, not with a rate.",
            errors=[ErrorItem("exemption_reason", "only with exemption_code")],
        )
    if exemption_code is not None and exemption_code not in VATEX:
        raise VatRuleInvalid(
            f"{exemption_code!r} is not a VAT exemption code this platform supports.",
            errors=[ErrorItem("exemption_code", "one of: " + ", ".join(VATEX))],
            hint="Use one of: " + ", ".join(VATEX),
        )
    return VatCategory.of(rate, exemption_code, exemption_reason)


def list_rules(session: Session) -> list[VatRuleRecord]:
    return list(session.exec(sm_select(VatRuleRecord).order_by(col(VatRuleRecord.subject))).all())


def set_rule(
    session: Session,
    subject: str,
    *,
    rate: Decimal | None,
    exemption_code: str | None,
    exemption_reason: str | None,
    created_by: str,
) -> VatRuleRecord:
    """Create or replace the rule of ``subject`` (flushed, not committed)."""
    check_subject_exists(session, subject)
    category = category_of(rate, exemption_code, exemption_reason)
    record = session.get(VatRuleRecord, subject) or VatRuleRecord(
        subject=subject, created_by=created_by
    )
    record.rate = None if category.exemption_code else category.rate
    record.exemption_code = category.exemption_code
    record.exemption_reason = (
        category.exemption_reason.strip() if category.exemption_reason else None
    )
    record.created_at = utcnow()
    record.created_by = created_by
    session.add(record)
    session.flush()
    return record


def remove_rule(session: Session, subject: str) -> VatRuleRecord | None:
    """Remove the rule of ``subject`` (flushed, not committed); its lines get the next rule or
    the default. None: there was no rule (removing is idempotent)."""
    parse_subject(subject)
    record = session.get(VatRuleRecord, subject)
    if record is not None:
        session.delete(record)
        session.flush()
    return record
