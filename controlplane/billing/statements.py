"""Statements: what each tenant owes for a period, line by line, and closing a period.

:func:`compute_statements` meters the usage events, prices every stretch an instance ran in a
plan (split at price changes), allocates every cost pool to its members and returns a
:class:`StatementSet`: one :class:`Statement` per tenant with its lines and totals, and one
:class:`PoolAllocation` per pool with every member's weight, exact share and cents (the audit
trail of the sharing key).

A :class:`StatementSet` is a value: computing it again with other prices or usage gives another
value and never changes this one. :func:`close_period` returns the closed copy with a digest
(sha256 of the canonical JSON); :func:`reopen_period` records who reopened it and why.

This module must not know about the database, FastAPI, Typer or file formats (see exports).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact
from enum import StrEnum
from fractions import Fraction
from typing import Any, ClassVar

from controlplane.billing.documents import doc, from_document, to_document
from controlplane.billing.errors import (
    CostPoolInvalid,
    PeriodAlreadyClosed,
    PeriodNotClosed,
    PeriodNotEnded,
    ReopenReasonRequired,
    StatementDigestMismatch,
    TenantInvalid,
)
from controlplane.billing.metering import (
    MeasuredUsage,
    RateCard,
    RatedUsage,
    UsageInterval,
    group_by_instance,
    meter,
    rate_usage,
)
from controlplane.billing.models import (
    CostPool,
    PoolKind,
    PriceList,
    SharingKey,
    TenantInfo,
    UsageEvent,
    UsageKind,
    UsageMeasure,
)
from controlplane.billing.money import from_cents
from controlplane.billing.periods import BRUSSELS, MICROSECOND, Period, require_aware
from controlplane.billing.sharing import Member, Share, allocate
from controlplane.catalog.models import canonical_json
from controlplane.errors import NotFound

CURRENCY = "EUR"
#: Decimals of a displayed quantity (the exact share is kept next to it).
QUANTITY_PLACES = 6
_HOUR_US = 3_600_000_000
_FULL = Fraction(1)
#: An instance that ran less than this in its whole life (a trial) takes no part in any pool.
DEFAULT_TRIAL_GRACE = timedelta(hours=24)
#: The flag on a tenant's pool line when its share could not be computed.
INHABITANTS_MISSING_FLAG = "incomplete: inhabitants missing"


class LineKind(StrEnum):
    PLAN_FEE = "plan_fee"
    #: Rated usage: quantity of a measure * its unit rate (see ``metering.rate_usage``).
    USAGE = "usage"
    SHARED_SERVICE = "shared_service"
    PLATFORM = "platform"


class SetStatus(StrEnum):
    DRAFT = "draft"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of a statement: quantity * unit price ~ amount, with the exact share kept.

    Plan fee: quantity = share of the month the instance ran in the plan at that price, unit
    ``month``, unit price = the monthly price. Pool lines: quantity = the tenant's share of the
    pool, unit ``share``, unit price = the pool's amount.
    """

    kind: LineKind
    service: str | None
    instance_id: str | None
    plan: str | None
    pool: str | None
    start: datetime | None = field(metadata=doc(key="from"))
    end: datetime | None = field(metadata=doc(key="to"))
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    exact_share: Fraction
    #: Why this line is not a normal line (e.g. ``incomplete: inhabitants missing``: the
    #: tenant's share of the pool was not computed); ``None`` for a normal line. Written only
    #: when set: documents closed before stay as they were.
    flag: str | None = field(default=None, metadata=doc(omit_default=True))
    #: The measure of a usage line (``cpu_core_hours`` …); ``None`` on other lines.
    measure: str | None = field(default=None, metadata=doc(omit_default=True))

    def as_dict(self) -> dict[str, Any]:
        return to_document(self)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Totals:
    plan_fees: Decimal
    shared_services: Decimal
    platform: Decimal
    #: Rated usage; shown only when there is any (documents closed before stay as they were).
    usage: Decimal = field(default=Decimal("0.00"), metadata=doc(omit_default=True))

    document_order: ClassVar[tuple[str, ...]] = (
        "plan_fees",
        "shared_services",
        "platform",
        "total",
        "usage",
    )

    @property
    def total(self) -> Decimal:
        return self.plan_fees + self.usage + self.shared_services + self.platform

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.plan_fees + other.plan_fees,
            self.shared_services + other.shared_services,
            self.platform + other.platform,
            self.usage + other.usage,
        )

    def document_extras(self) -> dict[str, Any]:
        return {"total": self.total}

    def as_dict(self) -> dict[str, str]:
        return to_document(self)  # type: ignore[no-any-return]


_ZERO = Totals(Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class Statement:
    """What one tenant owes for the period."""

    tenant: TenantInfo
    lines: tuple[StatementLine, ...]
    totals: Totals

    document_order: ClassVar[tuple[str, ...]] = ("tenant", "totals", "lines", "status", "flags")

    @property
    def total(self) -> Decimal:
        return self.totals.total

    @property
    def flags(self) -> list[str]:
        """What is incomplete on this statement (one text per flagged line), in line order."""
        return [f"{line.flag} (pool {line.pool})" for line in self.lines if line.flag]

    def document_extras(self) -> dict[str, Any]:
        return {"status": "incomplete", "flags": self.flags} if self.flags else {}

    def as_dict(self) -> dict[str, Any]:
        return to_document(self)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class PoolAllocation:
    """How one pool was shared: the members' weights, exact shares and cents (for audit)."""

    #: The pool's own keys sit in the allocation's document (``name``, ``kind``, ``key`` …).
    pool: CostPool = field(metadata=doc(flatten=True))
    amount: Decimal
    shares: tuple[Share, ...]
    note: str = ""

    document_order: ClassVar[tuple[str, ...]] = (
        "name",
        "kind",
        "service",
        "key",
        "key_label",
        "equal_percent",
        "usage_measure",
        "monthly_amount",
        "amount",
        "allocated",
        "note",
        "shares",
    )

    @property
    def allocated(self) -> Decimal:
        return from_cents(sum(s.amount_cents for s in self.shares))

    def document_extras(self) -> dict[str, Any]:
        return {"key_label": self.pool.key_label, "allocated": self.allocated}

    def as_dict(self) -> dict[str, Any]:
        return to_document(self)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class StatementSet:
    """All statements of one period; closed = frozen with a digest."""

    period: Period
    status: SetStatus
    computed_at: datetime
    #: Usage is metered up to here: the period's end, or ``now`` for a month still running.
    metered_until: datetime
    statements: tuple[Statement, ...]
    pools: tuple[PoolAllocation, ...]
    currency: str = CURRENCY
    closed_at: datetime | None = None
    closed_by: str | None = None
    digest: str | None = None

    document_order: ClassVar[tuple[str, ...]] = (
        "period",
        "period_start",
        "period_end",
        "currency",
        "status",
        "computed_at",
        "metered_until",
        "closed_at",
        "closed_by",
        "totals",
        "pools",
        "statements",
        "digest",
    )

    @property
    def totals(self) -> Totals:
        result = _ZERO
        for statement in self.statements:
            result = result + statement.totals
        return result

    def statement(self, tenant: str) -> Statement:
        for statement in self.statements:
            if statement.tenant.slug == tenant:
                return statement
        raise NotFound(detail=f"no statement for tenant {tenant} in period {self.period}")

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of the set (amounts as strings, so no float creeps in)."""
        return to_document(self)  # type: ignore[no-any-return]

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> StatementSet:
        """The set written as ``document`` by :meth:`as_dict` (the digest is not checked here)."""
        return from_document(cls, document)

    def document_extras(self) -> dict[str, Any]:
        return {
            "period_start": self.period.start,
            "period_end": self.period.end,
            "totals": self.totals,
        }

    def content_digest(self) -> str:
        """sha256 of the canonical JSON of everything except the digest itself."""
        return "sha256:" + hashlib.sha256(canonical_json(self._content()).encode()).hexdigest()

    def verify(self) -> None:
        """Refuse a closed set whose content no longer matches its digest."""
        if self.digest is not None and self.digest != self.content_digest():
            raise StatementDigestMismatch(
                detail=f"statements of {self.period} do not match their digest {self.digest}",
                hint="restore the closed statements from their stored JSON; never edit them",
            )

    def _content(self) -> dict[str, Any]:
        body = self.as_dict()
        del body["digest"]
        return body


@dataclass(frozen=True, slots=True)
class Reopening:
    """The audit record of reopening a closed period."""

    period: Period
    closed_digest: str
    reason: str
    reopened_by: str
    at: datetime


def compute_statements(
    *,
    period: Period,
    tenants: Iterable[TenantInfo],
    events: Iterable[UsageEvent] | dict[str, list[UsageEvent]],
    prices: PriceList,
    pools: Sequence[CostPool] = (),
    now: datetime,
    active_tenants: Collection[str] | None = None,
    trial_grace: timedelta = DEFAULT_TRIAL_GRACE,
    rates: RateCard | None = None,
    measured: Iterable[MeasuredUsage] = (),
) -> StatementSet:
    """The draft statements of ``period`` (month to date if it is still running).

    The platform pools are shared by the *active tenants*: by default every tenant with usage
    in the period; pass ``active_tenants`` (slugs) to name them instead (e.g. every tenant with
    status active, so that a tenant without instances still pays its platform share).

    A service pool's equal, inhabitants and mixed shares are prorated by the Brussels calendar
    days each tenant used the service (:func:`_days_used`); an instance that ran less than
    ``trial_grace`` in its whole life takes no part in any pool (its plan fee stays). A tenant
    without inhabitants under an inhabitants or mixed key gets a flagged line instead of a
    share, and the pool is shared by the other members.

    With ``rates``, every instance's usage (requested, and ``measured`` records) is rated into
    usage lines; a ``usage`` pool with measure ``usage_cost`` weighs each member by the sum of
    its usage lines (of the pool's service, or all of them for a platform pool).
    """
    now = require_aware(now, "now")
    period.ensure_started(now)
    by_slug: dict[str, TenantInfo] = {}
    for tenant in tenants:
        if tenant.slug in by_slug:
            raise TenantInvalid(detail=f"tenant {tenant.slug} is listed twice")
        by_slug[tenant.slug] = tenant
    _check_pools(pools)
    until = min(period.end, now)
    grouped = events if isinstance(events, dict) else group_by_instance(events)
    intervals = meter(grouped, period, until=until)
    for interval in intervals:
        if interval.tenant not in by_slug:
            raise TenantInvalid(
                detail=f"usage events of instance {interval.instance_id} name tenant "
                f"{interval.tenant}, which is not in the tenant master data",
                hint="pass every tenant that has usage in the period",
            )
    # Retained instances (deleted, data kept) pay for their storage only (rated below):
    # no plan fee, no run time in the pools' shares.
    running = [i for i in intervals if not i.retained]
    lines: dict[str, list[StatementLine]] = defaultdict(list)
    for tenant_slug, line in _plan_fee_lines(period, running, prices):
        lines[tenant_slug].append(line)
    rated = [] if rates is None else rate_usage(intervals, measured, rates, period, until=until)
    costs: dict[str, dict[str | None, int]] = defaultdict(dict)
    for item in rated:
        if item.tenant not in by_slug:
            raise TenantInvalid(
                detail=f"measured usage of instance {item.instance_id} names tenant "
                f"{item.tenant}, which is not in the tenant master data",
                hint="pass every tenant that has usage in the period",
            )
        lines[item.tenant].append(_usage_line(item))
        for service in {item.service, None}:
            costs[item.tenant][service] = costs[item.tenant].get(service, 0) + item.cents

    usage = _usage_by_tenant(running)
    trials = _trials(grouped, until, trial_grace)
    days = _days_used([i for i in running if i.instance_id not in trials and i.microseconds > 0])
    if active_tenants is None:
        active = sorted(usage)
    else:
        unknown = sorted(set(active_tenants) - by_slug.keys())
        if unknown:
            raise TenantInvalid(
                detail="active tenants not in the tenant master data: " + ", ".join(unknown),
                hint="pass the master data of every active tenant",
            )
        active = sorted(set(active_tenants))
    allocations: list[PoolAllocation] = []
    for pool in sorted(pools, key=lambda p: (p.kind != PoolKind.SERVICE, p.service or "", p.name)):
        allocation, incomplete = _allocate_pool(pool, period, by_slug, usage, active, days, costs)
        allocations.append(allocation)
        kind = LineKind.SHARED_SERVICE if pool.kind is PoolKind.SERVICE else LineKind.PLATFORM
        for slug in incomplete:
            lines[slug].append(
                StatementLine(
                    kind=kind,
                    service=pool.service,
                    instance_id=None,
                    plan=None,
                    pool=pool.name,
                    start=None,
                    end=None,
                    quantity=Decimal("0.000000"),
                    unit="share",
                    unit_price=allocation.amount,
                    amount=Decimal("0.00"),
                    exact_share=Fraction(0),
                    flag=INHABITANTS_MISSING_FLAG,
                )
            )
        for share in allocation.shares:
            lines[share.tenant].append(
                StatementLine(
                    kind=kind,
                    service=pool.service,
                    instance_id=None,
                    plan=None,
                    pool=pool.name,
                    start=None,
                    end=None,
                    quantity=_places(share.share),
                    unit="share",
                    unit_price=allocation.amount,
                    amount=share.amount,
                    exact_share=share.share,
                )
            )
    statements = tuple(
        _statement(by_slug[slug], lines[slug])
        for slug in sorted(lines, key=lambda s: by_slug[s].tie_break)
    )
    return StatementSet(
        period=period,
        status=SetStatus.DRAFT,
        computed_at=now,
        metered_until=until,
        statements=statements,
        pools=tuple(allocations),
    )


def close_period(statements: StatementSet, *, closed_by: str, at: datetime) -> StatementSet:
    """The closed, immutable copy of a draft set, with its digest.

    Only a period that has ended can be closed: its usage can no longer change.
    """
    at = require_aware(at, "closing time")
    if statements.status is SetStatus.CLOSED:
        raise PeriodAlreadyClosed(
            detail=f"billing period {statements.period} is already closed "
            f"(digest {statements.digest})",
            hint="reopen it first (an operator action with a reason) to close it again",
        )
    if statements.metered_until < statements.period.end or at < statements.period.end:
        raise PeriodNotEnded(
            detail=f"billing period {statements.period} has not ended (usage metered until "
            f"{statements.metered_until.isoformat()}); it cannot be closed yet",
            hint=f"close {statements.period} after {statements.period.end.isoformat()}",
        )
    if not closed_by.strip():
        raise ReopenReasonRequired(detail="closing a period needs the name of who closes it")
    closed = replace(statements, status=SetStatus.CLOSED, closed_at=at, closed_by=closed_by)
    return replace(closed, digest=closed.content_digest())


def reopen_period(
    statements: StatementSet, *, reason: str, reopened_by: str, at: datetime
) -> Reopening:
    """Record an operator's reopening of a closed period (the closed set itself stays as it is).

    The caller keeps the returned record (audit) with the closed set's digest, then may compute
    and close the period again.
    """
    if statements.status is not SetStatus.CLOSED or statements.digest is None:
        raise PeriodNotClosed(
            detail=f"billing period {statements.period} is not closed; there is nothing to reopen"
        )
    if not reason.strip():
        raise ReopenReasonRequired(
            detail=f"reopening billing period {statements.period} needs a reason",
            hint='say why, e.g. --reason "price of keycloak/medium corrected from 2024-03-01"',
        )
    if not reopened_by.strip():
        raise ReopenReasonRequired(
            detail=f"reopening billing period {statements.period} needs the name of who reopens it"
        )
    statements.verify()
    return Reopening(
        period=statements.period,
        closed_digest=statements.digest,
        reason=reason.strip(),
        reopened_by=reopened_by,
        at=require_aware(at, "reopening time"),
    )


def _check_pools(pools: Sequence[CostPool]) -> None:
    seen: set[str] = set()
    for pool in pools:
        if pool.name in seen:
            raise CostPoolInvalid(
                detail=f"two cost pools are named {pool.name!r}",
                hint="give every pool its own name",
            )
        seen.add(pool.name)


def _plan_fee_lines(
    period: Period, intervals: Sequence[UsageInterval], prices: PriceList
) -> Iterable[tuple[str, StatementLine]]:
    period_us = period.microseconds
    scale = 10**QUANTITY_PLACES
    for interval in intervals:
        for segment in prices.segments(
            interval.service, interval.plan, interval.start, interval.end
        ):
            us = (segment.end - segment.start) // MICROSECOND
            # Integer arithmetic for the hot path: cents = price_cents * us / period_us,
            # rounded half up; the exact share is kept as a fraction.
            cents = _div_half_up(segment.price_cents * us, period_us)
            yield (
                interval.tenant,
                StatementLine(
                    kind=LineKind.PLAN_FEE,
                    service=interval.service,
                    instance_id=interval.instance_id,
                    plan=interval.plan,
                    pool=None,
                    start=segment.start,
                    end=segment.end,
                    quantity=Decimal(_div_half_up(us * scale, period_us)).scaleb(-QUANTITY_PLACES),
                    unit="month",
                    unit_price=segment.monthly_price,
                    amount=from_cents(cents),
                    exact_share=Fraction(us, period_us),
                ),
            )


@dataclass(slots=True)
class _Usage:
    """A tenant's metered usage per service (key ``None``: all services), in raw units.

    Kept as integer microseconds and resource-microseconds (``None`` when an interval did not
    record its requests); turned into exact hours only for the pools that weigh them.
    """

    microseconds: dict[str | None, int]
    cpu: dict[str | None, Decimal | None]
    memory: dict[str | None, Decimal | None]

    def measure(self, measure: UsageMeasure, service: str | None) -> Fraction | None:
        if measure is UsageMeasure.INSTANCE_HOURS:
            return Fraction(self.microseconds.get(service, 0), _HOUR_US)
        raw = (self.cpu if measure is UsageMeasure.CPU_HOURS else self.memory).get(
            service, Decimal(0)
        )
        return None if raw is None else Fraction(raw) / _HOUR_US


_EXACT = Context(prec=60, traps=[Inexact])


def _usage_by_tenant(intervals: Sequence[UsageInterval]) -> dict[str, _Usage]:
    result: dict[str, _Usage] = {}
    for interval in intervals:
        length = interval.microseconds
        if length <= 0:
            continue
        usage = result.get(interval.tenant)
        if usage is None:
            usage = result[interval.tenant] = _Usage({}, {}, {})
        cpu = None if interval.cpu is None else _EXACT.multiply(interval.cpu, length)
        memory = None if interval.memory is None else _EXACT.multiply(interval.memory, length)
        for service in (interval.service, None):
            usage.microseconds[service] = usage.microseconds.get(service, 0) + length
            usage.cpu[service] = _add(usage.cpu.get(service, Decimal(0)), cpu)
            usage.memory[service] = _add(usage.memory.get(service, Decimal(0)), memory)
    return result


def _add(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    # One interval without recorded requests makes the whole sum unknown (never a guess).
    return None if total is None or value is None else _EXACT.add(total, value)


def _trials(grouped: dict[str, list[UsageEvent]], until: datetime, grace: timedelta) -> set[str]:
    """The instances that ran less than ``grace`` in their whole life (up to ``until``)."""
    if grace <= timedelta(0):
        return set()
    result: set[str] = set()
    for instance_id, items in grouped.items():
        lived = timedelta(0)
        since: datetime | None = None
        for event in items:
            if event.at >= until:
                break
            if since is None and event.kind is not UsageKind.STOPPED:
                since = event.at
            elif since is not None and event.kind is UsageKind.STOPPED:
                lived += event.at - since
                since = None
        if since is not None:
            lived += until - since
        if lived < grace:
            result.add(instance_id)
    return result


def _days_used(intervals: Sequence[UsageInterval]) -> dict[tuple[str, str], set[int]]:
    """(tenant, service) -> the Brussels calendar days (ordinals) on which an instance ran."""
    result: dict[tuple[str, str], set[int]] = defaultdict(set)
    for interval in intervals:
        first = interval.start.astimezone(BRUSSELS).date().toordinal()
        last = (interval.end - MICROSECOND).astimezone(BRUSSELS).date().toordinal()
        result[(interval.tenant, interval.service)].update(range(first, last + 1))
    return result


def _allocate_pool(
    pool: CostPool,
    period: Period,
    tenants: dict[str, TenantInfo],
    usage: dict[str, _Usage],
    active: Sequence[str],
    days: dict[tuple[str, str], set[int]],
    costs: dict[str, dict[str | None, int]] | None = None,
) -> tuple[PoolAllocation, list[str]]:
    """The pool's allocation, and the members left out because their data is missing."""
    amount = from_cents(
        int((pool.monthly_amount * 100).to_integral_value(rounding="ROUND_HALF_UP"))
    )
    presence: dict[str, Fraction] = {}
    if pool.kind is PoolKind.SERVICE:
        assert pool.service is not None  # CostPool checks this
        in_month = (period.end.astimezone(BRUSSELS).date() - period.first_day).days
        for slug in sorted(usage):
            used = len(days.get((slug, pool.service), ()))
            if used:
                presence[slug] = _FULL if used >= in_month else Fraction(used, in_month)
        slugs = sorted(presence)
        note = f"no tenant used {pool.service} in {period}" if not slugs else ""
    else:
        slugs = list(active)
        note = f"no active tenant in {period}" if not slugs else ""
    incomplete: list[str] = []
    if pool.key in (SharingKey.INHABITANTS, SharingKey.MIXED):
        incomplete = [slug for slug in slugs if tenants[slug].inhabitants is None]
        slugs = [slug for slug in slugs if tenants[slug].inhabitants is not None]
        if incomplete:
            # Counted, never named: tenant roles see the pool's note too.
            note = (
                f"{len(incomplete)} member(s) without inhabitants: their share is not "
                "computed; the pool is shared by the members with inhabitants"
            )
            if not slugs:
                note = "no member has inhabitants: the pool is not shared"
    empty = _Usage({}, {}, {})
    scope = pool.service if pool.kind is PoolKind.SERVICE else None
    members = [
        Member(
            tenants[slug],
            Fraction((costs or {}).get(slug, {}).get(scope, 0))
            if pool.usage_measure is UsageMeasure.USAGE_COST
            else usage.get(slug, empty).measure(pool.usage_measure, scope),
            presence=presence.get(slug, _FULL),
        )
        for slug in slugs
    ]
    shares = allocate(pool, members)
    return PoolAllocation(pool=pool, amount=amount, shares=tuple(shares), note=note), incomplete


def _statement(tenant: TenantInfo, lines: list[StatementLine]) -> Statement:
    order = {
        LineKind.PLAN_FEE: 0,
        LineKind.USAGE: 1,
        LineKind.SHARED_SERVICE: 2,
        LineKind.PLATFORM: 3,
    }
    lines.sort(
        key=lambda line: (
            order[line.kind],
            line.service or "",
            line.instance_id or "",
            line.start or datetime.min.replace(tzinfo=UTC),
            line.pool or "",
            line.measure or "",
        )
    )
    sums = {kind: Decimal("0.00") for kind in LineKind}
    for line in lines:
        sums[line.kind] += line.amount
    return Statement(
        tenant=tenant,
        lines=tuple(lines),
        totals=Totals(
            sums[LineKind.PLAN_FEE],
            sums[LineKind.SHARED_SERVICE],
            sums[LineKind.PLATFORM],
            sums[LineKind.USAGE],
        ),
    )


def _usage_line(item: RatedUsage) -> StatementLine:
    return StatementLine(
        kind=LineKind.USAGE,
        service=item.service,
        instance_id=item.instance_id,
        plan=None,
        pool=None,
        start=item.start,
        end=item.end,
        quantity=_places(item.quantity),
        unit=item.unit,
        unit_price=item.rate,
        amount=from_cents(item.cents),
        exact_share=item.quantity,
        measure=item.measure,
    )


def _div_half_up(numerator: int, denominator: int) -> int:
    whole, rest = divmod(numerator, denominator)
    return whole + (1 if 2 * rest >= denominator else 0)


def _places(value: Fraction) -> Decimal:
    return Decimal(_div_half_up(value.numerator * 10**QUANTITY_PLACES, value.denominator)).scaleb(
        -QUANTITY_PLACES
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")
