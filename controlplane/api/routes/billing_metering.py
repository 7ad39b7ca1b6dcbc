"""``/api/v1/billing/rates`` and ``/api/v1/billing/usage``: unit rates and measured usage.

Every role that reads billing lists the unit rates; ``finance`` and ``operator`` add rates and
import measured usage (``Action.RATE_READ`` / ``RATE_WRITE`` / ``USAGE_WRITE`` in the policy
table). A rate or a usage record dated inside a closed month is refused (409
``period_closed``). A usage batch is idempotent by its id: the same body again answers 200 with
the first answer, a different body under the same id is 409 ``usage_batch_conflict``. Each
change writes an audit event in the same transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from controlplane.api.deps import AuditDep, CursorQuery, LimitQuery, PrincipalDep, SessionDep
from controlplane.api.routes.common import PROBLEMS
from controlplane.api.schemas import Page, RequestBody
from controlplane.auth import audit
from controlplane.auth.policy import Action
from controlplane.billing import metering_store
from controlplane.billing.metering_records import UnitRateRecord
from controlplane.db.paging import paginate_items

router = APIRouter(prefix="/api/v1/billing", tags=["billing"], responses=PROBLEMS)

Rate = Annotated[Decimal, Field(max_digits=14, allow_inf_nan=False)]


class RateCreate(RequestBody):
    measure: Annotated[str, Field(max_length=63)]
    rate: Rate = Field(description='Euro per unit, at most 6 decimals, e.g. "0.031".')
    effective_from: date = Field(description="The rate applies from local midnight of this day.")
    unit: Annotated[str, Field(max_length=32)] | None = None
    rule: Literal["request", "measured", "max"] | None = None


class RatePublic(BaseModel):
    measure: str
    unit: str
    rule: str
    rate: str
    effective_from: date
    created_by: str
    created_at: datetime


class UsageImport(RequestBody):
    batch: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
    records: Annotated[list[dict[str, Any]], Field(max_length=100_000)]


class UsageImported(BaseModel):
    batch: str
    digest: str
    records: int
    received_at: datetime
    received_by: str


def _public(record: UnitRateRecord) -> RatePublic:
    return RatePublic(
        measure=record.measure,
        unit=record.unit,
        rule=record.rule,
        rate=f"{Decimal(record.rate):f}".rstrip("0").rstrip(".") or "0",
        effective_from=record.effective_from,
        created_by=record.created_by,
        created_at=record.created_at,
    )


@router.get("/rates", response_model=Page[RatePublic])
def list_rates(
    session: SessionDep,
    principal: PrincipalDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[RatePublic]:
    """The unit rates by measure and date; a later rate of a measure replaces the earlier."""
    principal.check(Action.RATE_READ)
    rates = [_public(r) for r in metering_store.list_rates(session)]
    page = paginate_items(
        rates, lambda r: (r.measure, r.effective_from.isoformat()), limit=limit, cursor=cursor
    )
    return Page(items=page.items, next_cursor=page.next_cursor)


@router.post("/rates", status_code=201, response_model=RatePublic)
def create_rate(
    body: RateCreate, session: SessionDep, principal: PrincipalDep, context: AuditDep
) -> RatePublic:
    """A new unit rate of a measure from a date on (finance, operator); never edited."""
    principal.check(Action.RATE_WRITE)
    record = metering_store.add_rate(
        session,
        measure=body.measure,
        rate=body.rate,
        effective_from=body.effective_from,
        unit=body.unit,
        rule=body.rule,
        created_by=principal.actor,
    )
    public = _public(record)
    audit.record(
        session,
        context,
        action="billing.rate.create",
        resource=f"rate:{record.measure}@{record.effective_from}",
        details={"rate": public.rate, "unit": record.unit, "rule": record.rule},
    )
    session.commit()
    return public


@router.post(
    "/usage",
    status_code=201,
    response_model=UsageImported,
    responses={200: {"description": "This batch was imported before with the same body."}},
)
def import_usage(
    body: UsageImport,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    context: AuditDep,
) -> UsageImported:
    """Import a batch of measured usage records (finance, operator), idempotent by batch id.

    A record: ``{tenant, instance, measure, from, to, quantity}`` (``from``/``to`` ISO
    datetimes with offset, within one month; quantity a number with at most 6 decimals).
    """
    principal.check(Action.USAGE_WRITE)
    answer = metering_store.import_usage(
        session, batch=body.batch, records=body.records, received_by=principal.actor
    )
    if answer.created:
        audit.record(
            session,
            context,
            action="billing.usage.import",
            resource=f"usage-batch:{answer.batch}",
            details={"records": answer.records, "digest": answer.digest},
        )
        session.commit()
    else:
        response.status_code = 200
    return UsageImported(
        batch=answer.batch,
        digest=answer.digest,
        records=answer.records,
        received_at=answer.received_at,
        received_by=answer.received_by,
    )
