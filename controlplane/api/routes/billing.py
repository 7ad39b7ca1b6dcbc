"""``/api/v1/billing``: statements per period, close/reopen, exports, prices, pools, estimates.

Who may do what (see docs/billing.md "API"): ``finance`` and ``operator`` read every tenant's
statements and set prices and pools and close periods; only an ``operator`` reopens a closed
period; ``tenant-admin``/``tenant-viewer`` read their own tenant's statements, exports and
estimates, and another tenant answers 404. Every change writes an audit event in the same
transaction, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, PlainSerializer
from sqlmodel import Session, col, select

from controlplane.api.deps import AuditDep, CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS, visible_tenant
from controlplane.api.schemas import DnsLabel, Page, RequestBody
from controlplane.auth import audit
from controlplane.auth.audit import AuditContext
from controlplane.auth.policy import Action, Principal
from controlplane.billing import estimating, invoices, ledger, pdf, peppol, pricing
from controlplane.billing.closed_periods import refuse_closed
from controlplane.billing.exports import MEDIA_TYPES, ExportFormat, Lang, export, file_name
from controlplane.billing.invoice_records import InvoiceRecord
from controlplane.billing.money import money_text
from controlplane.billing.periods import Period
from controlplane.billing.records import ClosedSetStatus, ClosedStatementSet, CostPoolRecord
from controlplane.billing.statements import StatementSet
from controlplane.db.paging import paginate_items
from controlplane.db.types import utcnow
from controlplane.errors import ControlPlaneError, ErrorItem, InvalidInput
from controlplane.provisioning.models import Instance
from controlplane.tenants.models import Tenant
from controlplane.tenants.services import get_tenant_by_id

router = APIRouter(prefix="/api/v1/billing", tags=["billing"], responses=PROBLEMS)

PeriodPath = Annotated[
    str, Path(max_length=20, description="The billing month, `YYYY-MM` (Europe/Brussels).")
]
TenantPath = Annotated[str, Path(max_length=63)]
#: Amounts: whole cents, at most 9,999,999,999.99 (the sign is checked by the domain, which
#: names the price or pool).
Money = Annotated[Decimal, Field(max_digits=12, allow_inf_nan=False)]

#: Money in answers: the documented format, a JSON string with two decimals ("1000.00").
MoneyOut = Annotated[Decimal, PlainSerializer(money_text, return_type=str)]

# -- bodies --------------------------------------------------------------------------------


class PriceCreate(RequestBody):
    service: DnsLabel
    plan: DnsLabel
    monthly_price: Money = Field(description='Monthly price in euro, e.g. "264.00".')
    effective_from: date = Field(description="The price applies from local midnight of this day.")


class PricePublic(BaseModel):
    service: str
    plan: str
    monthly_price: MoneyOut
    #: None: the catalogue's price, "since always".
    effective_from: date | None
    source: Literal["catalogue", "finance"]
    created_by: str | None = None
    created_at: datetime | None = None


class PoolCreate(RequestBody):
    name: DnsLabel
    kind: Literal["service", "platform"]
    service: DnsLabel | None = None
    monthly_amount: Money
    #: equal | inhabitants | usage | mixed (checked by the domain, which lists them).
    key: Annotated[str, Field(max_length=32)] | None = None
    equal_percent: Annotated[Decimal, Field(max_digits=5, allow_inf_nan=False)] | None = None
    usage_measure: Literal["instance_hours", "cpu_hours", "memory_hours", "usage_cost"] | None = (
        None
    )
    effective_from: date = Field(description="The first day of the first month of this amount.")


class PoolPublic(BaseModel):
    name: str
    kind: str
    service: str | None
    monthly_amount: MoneyOut
    key: str
    equal_percent: Decimal | None
    usage_measure: str
    #: None: the catalogue's shared cost of the service.
    effective_from: date | None
    source: Literal["catalogue", "finance"]
    created_by: str | None = None
    created_at: datetime | None = None


class ReopenRequest(RequestBody):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class ReopeningPublic(BaseModel):
    period: str
    closed_digest: str
    reason: str
    reopened_by: str
    at: datetime


class ClosingPublic(BaseModel):
    period: str
    status: str
    digest: str
    total: MoneyOut
    closed_at: datetime
    closed_by: str
    reopened_at: datetime | None
    reopened_by: str | None
    reopen_reason: str | None


class EstimatePublic(BaseModel):
    tenant: str
    service: str
    plan: str
    reference_period: str
    currency: str
    plan_fee: MoneyOut
    service_share: MoneyOut
    platform_share: MoneyOut
    monthly_total: MoneyOut
    additional: MoneyOut
    service_members: int
    platform_members: int


# -- helpers -------------------------------------------------------------------------------


def _commit_audited(
    session: Session, context: AuditContext, *, action: str, resource: str, details: dict[str, Any]
) -> None:
    """Commit a change together with its audit event: one transaction, so none without the other."""
    audit.record(session, context, action=action, resource=resource, details=details)
    session.commit()


@contextmanager
def _refusals_audited(
    session: Session, context: AuditContext, action: str, period: str, details: dict[str, Any]
) -> Iterator[None]:
    """Audit a refused period change (outcome ``refused``, code and reason), then re-raise.

    The refused change is rolled back first, so the audit event is all that is written.
    """
    try:
        yield
    except ControlPlaneError as exc:
        session.rollback()
        audit.record(
            session,
            context,
            action=action,
            resource=f"billing-period:{period}",
            details={**details, "code": exc.code, "refusal": exc.detail},
            outcome="refused",
        )
        session.commit()
        raise


def _own_tenant(session: Session, principal: Principal) -> Tenant | None:
    """The tenant of a tenant role; None for roles that see every tenant."""
    if not principal.is_tenant_bound or principal.tenant_id is None:
        return None
    return get_tenant_by_id(session, principal.tenant_id)


def _period(text: str) -> Period:
    return ledger.parse_period(text, utcnow())


def _visible_set(session: Session, principal: Principal, period: Period) -> StatementSet:
    principal.check(Action.TENANT_READ)
    statement_set = ledger.statements(session, period, utcnow())
    own = _own_tenant(session, principal)
    return statement_set if own is None else ledger.scoped(statement_set, own.slug)


def _document(statement_set: StatementSet, principal: Principal, session: Session) -> Any:
    body = statement_set.as_dict()
    own = _own_tenant(session, principal)
    # A tenant's view holds only its own statement: the digest is of the whole period's set.
    body["scope"] = "all" if own is None else f"tenant:{own.slug}"
    return body


# -- statements ----------------------------------------------------------------------------


@router.get("/periods/{period}/statements", response_model=dict[str, Any])
def period_statements(period: PeriodPath, session: SessionDep, principal: PrincipalDep) -> Any:
    """All statements of the period (a tenant role: only its own), closed or draft.

    A closed period answers its stored, digest-checked document; an open one is computed from
    the current usage and prices (month to date while the month runs).
    """
    statement_set = _visible_set(session, principal, _period(period))
    return _document(statement_set, principal, session)


@router.get("/periods/{period}/statements/{tenant}", response_model=dict[str, Any])
def tenant_statement(
    period: PeriodPath, tenant: TenantPath, session: SessionDep, principal: PrincipalDep
) -> Any:
    """One tenant's statement of the period (another tenant's, for a tenant role: 404)."""
    row = visible_tenant(session, principal, tenant, Action.TENANT_READ)
    chosen = _period(period)
    statement_set = ledger.statements(session, chosen, utcnow())
    statement = statement_set.statement(row.slug)
    return {
        "period": str(chosen),
        "status": str(statement_set.status),
        "digest": statement_set.digest,
        "currency": statement_set.currency,
        **statement.as_dict(),
    }


@router.get(
    "/periods/{period}/export",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in set(MEDIA_TYPES.values())},
            "description": "The statements as a file.",
        }
    },
)
def export_period(
    period: PeriodPath,
    session: SessionDep,
    principal: PrincipalDep,
    format: Annotated[ExportFormat, Query(description="csv, csv-be, xlsx or json")] = (
        ExportFormat.JSON
    ),
    lang: Annotated[Lang, Query(description="Header language: en (default) or nl")] = Lang.EN,
) -> Response:
    """The statements as CSV, Belgian CSV (``;``, decimal comma), XLSX or JSON.

    A draft (open period) is computed to the start of the current hour, Brussels time, and
    says so in the file: two exports in the same hour have the same figures. The file name
    holds ``draft`` or the closed set's digest prefix.
    """
    chosen = _period(period)
    principal.check(Action.TENANT_READ)
    statement_set = ledger.statements(session, chosen, _export_cut_off(utcnow()))
    own = _own_tenant(session, principal)
    if own is not None:
        statement_set = ledger.scoped(statement_set, own.slug)
    name = file_name(statement_set, format, tenant=own.slug if own else None)
    return Response(
        content=export(
            statement_set, format, lang=lang, names=_instance_names(session, statement_set)
        ),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/periods/{period}/statements/{tenant}/pdf",
    response_class=Response,
    responses={200: {"content": {pdf.MEDIA_TYPE: {}}, "description": "The statement as PDF."}},
)
def tenant_statement_pdf(
    period: PeriodPath,
    tenant: TenantPath,
    session: SessionDep,
    principal: PrincipalDep,
    lang: Annotated[Lang, Query(description="Language: en (default) or nl")] = Lang.EN,
) -> Response:
    """One tenant's statement as a PDF for people (another tenant's, for a tenant role: 404).

    The chart shows the tenant's totals of the 12 months ending with ``period``: the closed
    months' stored totals, this month's own (closed or draft) total, "no data" otherwise.
    """
    row = visible_tenant(session, principal, tenant, Action.TENANT_READ)
    chosen = _period(period)
    statement_set = ledger.statements(session, chosen, _export_cut_off(utcnow()))
    months = pdf.chart_months(chosen)
    history: dict[str, Decimal] = {}
    closed = select(ClosedStatementSet).where(
        col(ClosedStatementSet.period).in_(months),
        ClosedStatementSet.status == ClosedSetStatus.CLOSED,
    )
    for record in session.exec(closed):
        for statement in record.document.get("statements", []):
            if statement["tenant"]["slug"] == row.slug:
                history[record.period] = Decimal(statement["totals"]["total"])
    content = pdf.statement_pdf(
        statement_set,
        row.slug,
        history=history,
        lang=lang,
        names=_instance_names(session, statement_set),
    )
    name = pdf.file_name(statement_set, row.slug)
    return Response(
        content=content,
        media_type=pdf.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _export_cut_off(now: datetime) -> datetime:
    # Brussels is a whole number of hours from UTC, so the UTC hour is the Brussels hour.
    return now.replace(minute=0, second=0, microsecond=0)


def _instance_names(session: Session, statement_set: StatementSet) -> dict[str, str]:
    ids: set[uuid.UUID] = set()
    for statement in statement_set.statements:
        for line in statement.lines:
            if line.instance_id is not None:
                try:
                    ids.add(uuid.UUID(line.instance_id))
                except ValueError:
                    continue
    if not ids:
        return {}
    rows = session.exec(select(Instance.id, Instance.name).where(col(Instance.id).in_(ids)))
    return {str(i): n for i, n in rows}


@router.post("/periods/{period}/close", status_code=201, response_model=dict[str, Any])
def close_period(
    period: PeriodPath,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
    response: Response,
) -> Any:
    """Freeze the period's statements (finance, operator): stored with their digest.

    A refused close is audited too (``billing.close``, outcome ``refused``, with the reason).
    """
    with _refusals_audited(session, context, "billing.close", period, {}):
        principal.check(Action.BILLING_CLOSE)
        chosen = _period(period)
        closed = ledger.close(session, chosen, closed_by=principal.actor, now=utcnow())
    _commit_audited(
        session,
        context,
        action="billing.close",
        resource=f"billing-period:{chosen}",
        details={"digest": closed.digest, "total": str(closed.totals.total)},
    )
    response.headers["Location"] = f"/api/v1/billing/periods/{chosen}/statements"
    return _document(closed, principal, session)


@router.post("/periods/{period}/reopen", response_model=ReopeningPublic)
def reopen_period(
    period: PeriodPath,
    body: ReopenRequest,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> ReopeningPublic:
    """Reopen a closed period (operator only; audited). The closed set stays in the history.

    A refused reopen is audited too (``billing.reopen``, outcome ``refused``, with the reason).
    """
    with _refusals_audited(session, context, "billing.reopen", period, {"reason": body.reason}):
        principal.check(Action.BILLING_REOPEN)
        chosen = _period(period)
        reopening = ledger.reopen(
            session, chosen, reason=body.reason, reopened_by=principal.actor, now=utcnow()
        )
    _commit_audited(
        session,
        context,
        action="billing.reopen",
        resource=f"billing-period:{chosen}",
        details={"closed_digest": reopening.closed_digest, "reason": reopening.reason},
    )
    return ReopeningPublic(
        period=str(reopening.period),
        closed_digest=reopening.closed_digest,
        reason=reopening.reason,
        reopened_by=reopening.reopened_by,
        at=reopening.at,
    )


@router.get("/periods/{period}/closings", response_model=Page[ClosingPublic])
def period_closings(
    period: PeriodPath,
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ClosingPublic]:
    """Every closing of the period, oldest first, reopened ones included (finance, operator)."""
    principal.check(Action.BILLING_CLOSINGS_READ)
    closings = [
        ClosingPublic(
            period=r.period,
            status=str(r.status),
            digest=r.digest,
            total=r.total,
            closed_at=r.closed_at,
            closed_by=r.closed_by,
            reopened_at=r.reopened_at,
            reopened_by=r.reopened_by,
            reopen_reason=r.reopen_reason,
        )
        for r in ledger.history(session, _period(period))
    ]
    return _page(closings, lambda c: (c.closed_at.isoformat(), c.digest), limit, cursor)


def _iso(value: date | datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _page[T](
    items: list[T], key: Callable[[T], tuple[str, ...]], limit: int, cursor: str | None
) -> Page[T]:
    # These lists merge sources (catalogue and finance records) or are short histories,
    # so they are paged in memory with the same cursor contract as every other list.
    page = paginate_items(items, key, limit=limit, cursor=cursor)
    return Page(items=page.items, next_cursor=page.next_cursor)


# -- prices --------------------------------------------------------------------------------


@router.get("/prices", response_model=Page[PricePublic])
def list_prices(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[PricePublic]:
    """The catalogue's plan prices and finance's dated prices, by service, plan and date."""
    principal.check(Action.CATALOG_READ)
    prices = [
        PricePublic(
            service=v.service,
            plan=v.plan,
            monthly_price=v.monthly_price,
            effective_from=v.effective_from,
            source="finance" if v.source == "finance" else "catalogue",
            created_by=v.created_by,
            created_at=v.created_at,
        )
        for v in pricing.list_prices(session)
    ]
    return _page(
        prices,
        lambda p: (p.service, p.plan, _iso(p.effective_from), p.source, _iso(p.created_at)),
        limit,
        cursor,
    )


@router.post("/prices", status_code=201, response_model=PricePublic)
def create_price(
    body: PriceCreate, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> PricePublic:
    """A new monthly price of a plan from a date on (finance, operator); never edited."""
    principal.check(Action.BILLING_PRICE_WRITE)
    refuse_closed(session, body.effective_from, f"a price from {body.effective_from}")
    record = pricing.add_price(
        session,
        service=body.service,
        plan=body.plan,
        monthly_price=body.monthly_price,
        effective_from=body.effective_from,
        created_by=principal.actor,
    )
    _commit_audited(
        session,
        context,
        action="billing.price.create",
        resource=f"price:{record.service}/{record.plan}@{record.effective_from}",
        details={"monthly_price": money_text(record.monthly_price)},
    )
    return PricePublic(
        service=record.service,
        plan=record.plan,
        monthly_price=record.monthly_price,
        effective_from=record.effective_from,
        source="finance",
        created_by=record.created_by,
        created_at=record.created_at,
    )


# -- pools ---------------------------------------------------------------------------------


def _pool_public(record: CostPoolRecord) -> PoolPublic:
    return PoolPublic(
        name=record.name,
        kind=record.kind,
        service=record.service,
        monthly_amount=record.monthly_amount,
        key=record.key,
        equal_percent=record.equal_percent,
        usage_measure=record.usage_measure,
        effective_from=record.effective_from,
        source="finance",
        created_by=record.created_by,
        created_at=record.created_at,
    )


@router.get("/pools", response_model=Page[PoolPublic])
def list_pools(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[PoolPublic]:
    """Finance's cost pools (every dated amount) and the catalogue's shared service costs."""
    principal.check(Action.CATALOG_READ)
    catalogue = [
        PoolPublic(
            name=p.name,
            kind=str(p.kind),
            service=p.service,
            monthly_amount=p.monthly_amount,
            key=str(p.key),
            equal_percent=p.equal_percent,
            usage_measure=str(p.usage_measure),
            effective_from=None,
            source="catalogue",
        )
        for p in pricing.catalogue_pools(session)
    ]
    pools = catalogue + [_pool_public(r) for r in pricing.list_pools(session)]
    # The catalogue's shared costs first, then finance's pools by name and date.
    return _page(
        pools,
        lambda p: (
            "0" if p.source == "catalogue" else "1",
            p.name,
            _iso(p.effective_from),
            _iso(p.created_at),
        ),
        limit,
        cursor,
    )


@router.post("/pools", status_code=201, response_model=PoolPublic)
def create_pool(
    body: PoolCreate, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> PoolPublic:
    """A cost pool's monthly amount and key from a month on (finance, operator)."""
    principal.check(Action.BILLING_POOL_WRITE)
    record = pricing.add_pool(
        session,
        name=body.name,
        kind=body.kind,
        service=body.service,
        monthly_amount=body.monthly_amount,
        key=body.key,
        equal_percent=body.equal_percent,
        usage_measure=body.usage_measure,
        effective_from=body.effective_from,
        created_by=principal.actor,
    )
    _commit_audited(
        session,
        context,
        action="billing.pool.create",
        resource=f"cost-pool:{record.name}@{record.effective_from}",
        details=body.model_dump(mode="json"),
    )
    return _pool_public(record)


# -- estimates -----------------------------------------------------------------------------


@router.get("/estimate", response_model=EstimatePublic)
def estimate(
    session: SessionDep,
    principal: PrincipalDep,
    service_name: Annotated[str, Query(alias="service", max_length=63)],
    plan: Annotated[str, Query(max_length=63)],
    tenant: Annotated[str | None, Query(max_length=63)] = None,
) -> EstimatePublic:
    """What one more instance of the plan would cost the tenant per month (indicative)."""
    own = _own_tenant(session, principal)
    if tenant is not None:
        row = visible_tenant(session, principal, tenant, Action.TENANT_READ)
    elif own is not None:
        row = own
    else:
        raise InvalidInput(
            "An estimate is for one tenant; say which.",
            errors=[ErrorItem("query.tenant", "required for the operator and finance roles")],
            hint="Add ?tenant=<slug>.",
        )
    result = estimating.estimate(session, tenant=row, service=service_name, plan=plan, now=utcnow())
    return EstimatePublic.model_validate(result.as_dict())


# -- invoices ------------------------------------------------------------------------------


class InvoiceSummary(BaseModel):
    number: str
    kind: Literal["invoice", "credit_note"]
    period: str
    tenant: str
    credits: str | None
    issue_date: date
    due_date: date
    total_excl_vat: Decimal
    total_vat: Decimal
    total_incl_vat: Decimal
    payment_reference: str
    digest: str


@router.get("/invoices", response_model=Page[InvoiceSummary])
def list_invoices(
    session: SessionDep,
    principal: PrincipalDep,
    period: Annotated[str | None, Query(max_length=20, description="YYYY-MM")] = None,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[InvoiceSummary]:
    """Issued invoices and credit notes by number (a tenant role: only its own tenant's)."""
    principal.check(Action.TENANT_READ)
    own = _own_tenant(session, principal)
    if tenant is not None:
        tenant = visible_tenant(session, principal, tenant, Action.TENANT_READ).slug
    elif own is not None:
        tenant = own.slug
    rows = invoices.list_invoices(
        session, period=None if period is None else Period.parse(period), tenant=tenant
    )
    items = [
        InvoiceSummary.model_validate(r, from_attributes=True)
        for r in rows
        if principal.sees_tenant(r.tenant_id)
    ]
    return _page(items, lambda i: (i.number,), limit, cursor)


@router.get("/invoices/{number}", response_model=dict[str, Any])
def get_invoice(
    number: Annotated[str, Path(max_length=20)], session: SessionDep, principal: PrincipalDep
) -> Any:
    """One issued invoice or credit note: the stored document, as issued (with its digest)."""
    return _visible_invoice(session, principal, number).document


def _visible_invoice(session: Session, principal: Principal, number: str) -> InvoiceRecord:
    row = invoices.get_invoice(session, number)
    if not principal.sees_tenant(row.tenant_id):
        raise invoices.InvoiceNotFound(f"There is no invoice or credit note {number!r}.")
    principal.check(Action.TENANT_READ, tenant_id=row.tenant_id)
    return row


@router.get(
    "/invoices/{number}/ubl",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "UBL 2.1 XML."}},
)
def get_invoice_ubl(
    number: Annotated[str, Path(max_length=20)], session: SessionDep, principal: PrincipalDep
) -> Response:
    """The invoice or credit note as Peppol BIS Billing 3.0 UBL 2.1 (Invoice or CreditNote).

    Refused (422 ``ubl_invalid``) when the document lacks what Peppol needs, e.g. the
    customer's enterprise number; the problem names the command that fixes it.
    """
    document = _visible_invoice(session, principal, number).document
    return Response(
        content=peppol.ubl_xml(document),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{peppol.file_name(document)}"'},
    )
