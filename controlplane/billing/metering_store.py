"""Metering's adapter: unit rates and measured usage from the database to the domain and back.

``load_rates`` and ``load_measured`` feed :func:`controlplane.billing.ledger.compute`;
``add_rate`` and ``import_usage`` store what the API receives. A usage batch is idempotent by
its id: the SHA-256 of its canonical body is kept, the same body again answers as the first
time, a different body under the same id is a conflict. Every write is flushed, never
committed (the caller commits with its audit event).

Instances and tenants are read through narrow, read-only column lists (billing does not import
provisioning, see ``inputs.py``).

This module must not know about FastAPI or Typer.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, Uuid, column, select, table
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from controlplane.billing.closed_periods import refuse_closed
from controlplane.billing.errors import PriceExists, UsageInvalid
from controlplane.billing.metering import (
    _MEASURE,
    MeasuredUsage,
    MeasureRule,
    RateCard,
    UnitRate,
)
from controlplane.billing.metering_records import (
    MeasuredUsageRecord,
    UnitRateRecord,
    UsageBatchRecord,
)
from controlplane.billing.models import UsageEvent, UsageKind, _quantity
from controlplane.billing.periods import Period
from controlplane.errors import Conflict, ErrorItem
from controlplane.tenants.models import Tenant

if TYPE_CHECKING:
    from controlplane.billing.inputs import Catalogue

_INSTANCES = table(
    "instances",
    column("id", Uuid()),
    column("tenant_id", Uuid()),
    column("service", String()),
    column("name", String()),
)
_GIB = Decimal(1024) ** 3


class UsageBatchConflict(Conflict):
    """This usage batch id was imported with a different body."""

    code = "usage_batch_conflict"


# -- reading -------------------------------------------------------------------------------


def rate_of(record: UnitRateRecord) -> UnitRate:
    return UnitRate(
        measure=record.measure,
        rate=Decimal(record.rate).normalize() if record.rate else Decimal(0),
        effective_from=record.effective_from,
        unit=record.unit,
        rule=MeasureRule(record.rule),
    )


def list_rates(session: Session) -> list[UnitRateRecord]:
    return list(
        session.exec(
            sm_select(UnitRateRecord).order_by(
                col(UnitRateRecord.measure), col(UnitRateRecord.effective_from)
            )
        ).all()
    )


def load_rates(session: Session) -> RateCard:
    return RateCard(tuple(rate_of(r) for r in list_rates(session)))


def load_measured(session: Session, period: Period) -> list[MeasuredUsage]:
    """The measured records whose ``from`` lies in ``period``."""
    rows = session.exec(
        sm_select(MeasuredUsageRecord)
        .where(
            col(MeasuredUsageRecord.start) >= period.start,
            col(MeasuredUsageRecord.start) < period.end,
        )
        .order_by(col(MeasuredUsageRecord.batch), col(MeasuredUsageRecord.position))
    ).all()
    return [
        MeasuredUsage(
            tenant=r.tenant,
            instance_id=str(r.instance_id),
            measure=r.measure,
            start=r.start,
            end=r.end,
            quantity=Decimal(r.quantity),
            service=r.service,
        )
        for r in rows
    ]


def with_storage(events: Sequence[UsageEvent], catalogue: Catalogue) -> list[UsageEvent]:
    """Events with the plan's storage (GiB) filled in (started and plan_changed events).

    The instance's storage floor (a volume that was once larger) is not applied yet.
    """
    result: list[UsageEvent] = []
    for event in events:
        plan = None
        if event.kind is not UsageKind.STOPPED and event.plan is not None:
            plan = catalogue.plans.get((event.service, event.plan))
        if plan is None or event.storage is not None:
            result.append(event)
            continue
        result.append(replace(event, storage=_quantity(str(plan.storage)) / _GIB))
    return result


# -- rates ---------------------------------------------------------------------------------


def add_rate(
    session: Session,
    *,
    measure: str,
    rate: Decimal,
    effective_from: date,
    unit: str | None,
    rule: str | None,
    created_by: str,
) -> UnitRateRecord:
    checked = UnitRate(
        measure, rate, effective_from, unit or "", MeasureRule(rule) if rule else None
    )
    refuse_closed(session, effective_from, f"the unit rate of {measure} from {effective_from}")
    clash = session.exec(
        sm_select(UnitRateRecord).where(
            UnitRateRecord.measure == measure, UnitRateRecord.effective_from == effective_from
        )
    ).first()
    if clash is not None:
        raise PriceExists(
            detail=f"{measure} already has a unit rate from {effective_from} "
            f"({clash.rate}, set by {clash.created_by})",
            hint="rates are never edited: add a rate from another date",
        )
    assert checked.rule is not None  # UnitRate always sets it
    record = UnitRateRecord(
        measure=checked.measure,
        unit=checked.unit,
        rule=checked.rule.value,
        rate=checked.rate,
        effective_from=effective_from,
        created_by=created_by,
    )
    session.add(record)
    session.flush()
    return record


# -- measured usage ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportAnswer:
    batch: str
    digest: str
    records: int
    received_at: datetime
    received_by: str
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "digest": self.digest,
            "records": self.records,
            "received_at": self.received_at.isoformat(),
            "received_by": self.received_by,
        }


def body_digest(records: list[dict[str, Any]]) -> str:
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _answer(row: UsageBatchRecord, count: int, *, created: bool) -> ImportAnswer:
    return ImportAnswer(row.batch, row.digest, count, row.received_at, row.received_by, created)


def import_usage(
    session: Session,
    *,
    batch: str,
    records: list[dict[str, Any]],
    received_by: str,
) -> ImportAnswer:
    """Store a batch of measured usage records (or answer as before for the same body)."""
    digest = body_digest(records)
    existing = session.get(UsageBatchRecord, batch)
    if existing is not None:
        count = len(
            session.exec(
                sm_select(MeasuredUsageRecord.id).where(MeasuredUsageRecord.batch == batch)
            ).all()
        )
        if existing.digest != digest:
            raise UsageBatchConflict(
                detail=f"usage batch {batch} was imported on "
                f"{existing.received_at.isoformat()} by {existing.received_by} with another "
                f"body ({existing.digest})",
                hint="a batch is never changed: import the corrections under a new batch id",
            )
        return _answer(existing, count, created=False)
    tenants = {r.slug: r.id for r in session.exec(sm_select(Tenant)).all()}
    instances = {row.id: row for row in session.execute(select(_INSTANCES)).all()}
    rows: list[MeasuredUsageRecord] = []
    for index, record in enumerate(records):
        rows.append(_record(session, batch, index, record, tenants, instances))
    row = UsageBatchRecord(batch=batch, digest=digest, received_by=received_by)
    session.add(row)
    session.flush()
    for item in rows:
        session.add(item)
    session.flush()
    return _answer(row, len(rows), created=True)


def _record(
    session: Session,
    batch: str,
    index: int,
    data: dict[str, Any],
    tenants: dict[str, uuid.UUID],
    instances: dict[uuid.UUID, Any],
) -> MeasuredUsageRecord:
    where = f"records[{index}]"

    def refuse(field: str, message: str) -> UsageInvalid:
        return UsageInvalid(
            detail=f"{where}: {message}",
            errors=[ErrorItem(f"records.{index}.{field}", message)],
            extra={"index": index},
        )

    if not _MEASURE.fullmatch(str(data.get("measure"))):
        raise refuse("measure", f"measure {data.get('measure')!r} is not a measure name")
    tenant_id = tenants.get(str(data.get("tenant")))
    if tenant_id is None:
        raise refuse("tenant", f"unknown tenant {data.get('tenant')!r}")
    try:
        instance_id = uuid.UUID(str(data.get("instance")))
    except ValueError as exc:
        raise refuse("instance", f"instance {data.get('instance')!r} is not an id") from exc
    instance = instances.get(instance_id)
    if instance is None:
        raise refuse("instance", f"unknown instance {instance_id}")
    if instance.tenant_id != tenant_id:
        raise refuse("instance", f"instance {instance_id} is not of tenant {data['tenant']}")
    try:
        start = datetime.fromisoformat(str(data.get("from")))
        end = datetime.fromisoformat(str(data.get("to")))
        quantity = Decimal(str(data.get("quantity")))
    except (ValueError, InvalidOperation) as exc:
        raise refuse(
            "from", f"from, to and quantity must be ISO datetimes and a number: {exc}"
        ) from exc
    try:
        usage = MeasuredUsage(
            tenant=str(data["tenant"]),
            instance_id=str(instance_id),
            measure=str(data.get("measure")),
            start=start,
            end=end,
            quantity=quantity,
            service=instance.service,
        )
    except UsageInvalid as exc:
        raise refuse("quantity", exc.detail) from exc
    if quantity != quantity.quantize(Decimal("0.000001")) or quantity >= Decimal(10) ** 14:
        raise refuse("quantity", f"quantity {quantity} has more than 6 decimals or is too large")
    month = Period.containing(usage.start)
    if usage.end > month.end:
        raise refuse("to", f"runs past the end of {month}; split records at month boundaries")
    if data.get("service") not in (None, instance.service):
        raise refuse("service", f"instance {instance_id} runs {instance.service}")
    refuse_closed(session, month.first_day, where)
    return MeasuredUsageRecord(
        batch=batch,
        position=index,
        tenant=usage.tenant,
        instance_id=instance_id,
        service=instance.service,
        measure=usage.measure,
        start=usage.start,
        end=usage.end,
        quantity=usage.quantity,
    )
