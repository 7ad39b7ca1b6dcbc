"""``/api/v1/billing/vat-rules``: finance's VAT rules per plan, pool or service.

Every role that reads billing lists the rules; ``finance`` and ``operator`` set and remove
them (``Action.VAT_RULE_READ`` / ``VAT_RULE_WRITE`` in the policy table). Each change writes
an audit event in the same transaction. A rule applies to invoices issued after it is set:
issued invoices are immutable documents and never change with the rules.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, PlainSerializer

from controlplane.api.deps import AuditDep, CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS
from controlplane.api.schemas import Page, RequestBody
from controlplane.auth import audit
from controlplane.auth.policy import Action
from controlplane.billing import vat_rules
from controlplane.billing.invoice_records import VatRuleRecord
from controlplane.billing.invoices import VatCategory
from controlplane.billing.money import money_text
from controlplane.db.paging import paginate_items

router = APIRouter(prefix="/api/v1/billing/vat-rules", tags=["billing"], responses=PROBLEMS)

SubjectPath = Annotated[
    str,
    Path(
        max_length=140,
        description="`plan:<service>/<plan>`, `pool:<name>` or `service:<service>`.",
    ),
]
Percent = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=5, decimal_places=2, allow_inf_nan=False),
]
#: Percentages in answers: a JSON string with two decimals ("21.00").
PercentOut = Annotated[Decimal, PlainSerializer(money_text, return_type=str)]


class VatRulePut(RequestBody):
    rate: Percent | None = Field(default=None, description='Percent, e.g. "21.00".')
    exemption_code: Annotated[str, Field(max_length=32)] | None = Field(
        default=None, description="An EN 16931 VATEX code, e.g. VATEX-EU-132."
    )
    exemption_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class VatRulePublic(BaseModel):
    subject: str
    #: The EN 16931 VAT category: S (standard), Z (zero), E, AE, K, G, O (exemptions).
    category: str
    rate: PercentOut
    exemption_code: str | None
    exemption_reason: str | None
    created_by: str
    created_at: datetime


def _public(record: VatRuleRecord) -> VatRulePublic:
    category = VatCategory.of(record.rate, record.exemption_code, record.exemption_reason)
    return VatRulePublic(
        subject=record.subject,
        category=category.category,
        rate=category.rate,
        exemption_code=record.exemption_code,
        exemption_reason=record.exemption_reason,
        created_by=record.created_by,
        created_at=record.created_at,
    )


@router.get("", response_model=Page[VatRulePublic])
def list_vat_rules(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[VatRulePublic]:
    """The VAT rules by subject; a line without a rule gets the configured default."""
    principal.check(Action.VAT_RULE_READ)
    rules = [_public(r) for r in vat_rules.list_rules(session)]
    page = paginate_items(rules, lambda r: (r.subject,), limit=limit, cursor=cursor)
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.put("/{subject:path}", response_model=VatRulePublic)
def put_vat_rule(
    subject: SubjectPath,
    body: VatRulePut,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> VatRulePublic:
    """Set (or replace) the VAT rule of a plan, pool or service (finance, operator).

    Applies to invoices issued from now on; issued invoices never change.
    """
    principal.check(Action.VAT_RULE_WRITE)
    record = vat_rules.set_rule(
        session,
        subject,
        rate=body.rate,
        exemption_code=body.exemption_code,
        exemption_reason=body.exemption_reason,
        created_by=principal.actor,
    )
    public = _public(record)
    audit.record(
        session,
        context,
        action="billing.vat_rule.set",
        resource=f"vat-rule:{subject}",
        details={
            "rate": money_text(public.rate),
            "category": public.category,
            "exemption_code": public.exemption_code,
        },
    )
    session.commit()
    return public


@router.delete(
    "/{subject:path}",
    response_model=VatRulePublic,
    responses={204: {"description": "There was no rule for the subject (nothing changed)."}},
)
def delete_vat_rule(
    subject: SubjectPath, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> Any:
    """Remove a VAT rule (finance, operator): its lines get the next rule or the default.

    Answers the removed rule, or 204 when the subject had none (idempotent). Issued invoices
    never change.
    """
    principal.check(Action.VAT_RULE_WRITE)
    removed = vat_rules.remove_rule(session, subject)
    if removed is None:
        return Response(status_code=204)
    public = _public(removed)
    audit.record(
        session,
        context,
        action="billing.vat_rule.remove",
        resource=f"vat-rule:{subject}",
        details={"rate": money_text(public.rate), "exemption_code": public.exemption_code},
    )
    session.commit()
    return public
