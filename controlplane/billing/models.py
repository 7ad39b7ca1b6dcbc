"""What billing is computed from: usage events, tenant master data, price lists, cost pools.

These are plain frozen values, checked when they are made, so that an invalid price or pool is
refused with a message naming it before anything is computed. The database adapter builds them
from its rows (usage events table, tenants, finance's price lists and pools); the catalogue
gives the default prices and the per-service shared costs (:meth:`PriceList.from_catalog`,
:meth:`CostPool.from_shared_cost`).

This module must not know about the database, FastAPI or Typer.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from controlplane.billing.errors import (
    CostPoolInvalid,
    PriceInvalid,
    PriceMissing,
    TenantInvalid,
    UsageInvalid,
)
from controlplane.billing.money import CENT
from controlplane.billing.periods import BRUSSELS, local_midnight, require_aware
from controlplane.catalog.models import Plan, ServiceDefinition, ServiceRelease, SharedCost
from controlplane.catalog.models import SharingKey as SharingKey

__all__ = [
    "CostPool",
    "PoolKind",
    "PriceEntry",
    "PriceList",
    "SharingKey",
    "TenantInfo",
    "UsageEvent",
    "UsageKind",
    "UsageMeasure",
    "plan_requests",
]


class UsageKind(StrEnum):
    STARTED = "started"
    PLAN_CHANGED = "plan_changed"
    #: Workloads stopped, data kept: from here the instance's storage only is metered.
    RETAINED = "retained"
    STOPPED = "stopped"


class PoolKind(StrEnum):
    #: A cost of one service, shared by the tenants that used the service in the period.
    SERVICE = "service"
    #: A cost of the platform, shared by all active tenants.
    PLATFORM = "platform"


class UsageMeasure(StrEnum):
    """What the ``usage`` key weighs: time, or requested resources over time."""

    INSTANCE_HOURS = "instance_hours"
    CPU_HOURS = "cpu_hours"
    MEMORY_HOURS = "memory_hours"
    #: The tenant's rated usage cost (the sum of its usage lines, see ``metering``).
    USAGE_COST = "usage_cost"


def _money(
    value: Decimal | int | str, what: str, error: type[PriceInvalid | CostPoolInvalid]
) -> Decimal:
    # Floats are refused: 0.1 is not 0.10 euro, and money must never pass through binary.
    if isinstance(value, (float, bool)):
        raise error(
            detail=f"{what} is a float ({value!r}); money is never a float",
            hint='give the amount as a Decimal or a string such as "123.45"',
        )
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise error(
            detail=f"{what} {value!r} is not a number", hint='write it as "123.45"'
        ) from exc
    if not amount.is_finite():
        raise error(detail=f"{what} {value!r} is not a finite amount", hint='write it as "123.45"')
    if amount < 0:
        raise error(
            detail=f"{what} is negative ({amount}); prices and pool amounts are never negative",
            hint="give the amount as 0 or more (a credit is not a price)",
        )
    return amount


def _optional_resource(value: Decimal | int | str | None, what: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = str(value)
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise UsageInvalid(detail=f"{what} {value!r} is not a number") from exc
    if not amount.is_finite() or amount < 0:
        raise UsageInvalid(detail=f"{what} {value!r} must be a number of 0 or more")
    return amount


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """An instance started, changed plan or stopped (the billing truth; never edited).

    ``cpu`` (cores) and ``memory`` (GiB) are the instance's requested resources from this
    event on; only the ``usage`` key with ``cpu_hours``/``memory_hours`` needs them.
    ``storage`` (GiB) is the instance's persistent volume size from this event on (the plan's
    storage raised to the instance's storage floor); only the ``storage_gib_months`` rate uses it.
    """

    instance_id: str
    tenant: str
    service: str
    kind: UsageKind
    at: datetime
    plan: str | None = None
    cpu: Decimal | None = None
    memory: Decimal | None = None
    storage: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(UsageKind, self.kind, "usage event kind"))
        where = f"usage event {self.kind} of instance {self.instance_id}"
        object.__setattr__(self, "at", require_aware(self.at, f"{where}: at"))
        if self.kind is not UsageKind.STOPPED and not self.plan:
            raise UsageInvalid(
                detail=f"{where} has no plan",
                hint="started and plan_changed events carry the plan from then on",
            )
        object.__setattr__(self, "cpu", _optional_resource(self.cpu, f"{where}: cpu"))
        object.__setattr__(self, "memory", _optional_resource(self.memory, f"{where}: memory"))
        object.__setattr__(self, "storage", _optional_resource(self.storage, f"{where}: storage"))


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """The master data of a municipality that billing needs (and shows on statements)."""

    slug: str
    name: str
    nis_code: str
    inhabitants: int | None = None
    inhabitants_year: int | None = None
    enterprise_number: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not self.slug:
            raise TenantInvalid(detail=f"tenant {self.name!r} has no slug")
        if self.inhabitants is not None and (
            isinstance(self.inhabitants, bool)
            or not isinstance(self.inhabitants, int)
            or self.inhabitants < 0
        ):
            raise TenantInvalid(
                detail=f"tenant {self.slug}: inhabitants {self.inhabitants!r} must be a whole "
                "number of 0 or more",
                hint="fix the tenant's master data (inhabitants at the reference date)",
            )

    @property
    def tie_break(self) -> tuple[str, str]:
        """The deterministic order of tenants: NIS code, then slug."""
        return (self.nis_code, self.slug)


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The monthly price of a service plan from a date on (Europe/Brussels midnight).

    ``effective_from=None`` means "since always" (the catalogue's default price).
    """

    service: str
    plan: str
    monthly_price: Decimal
    effective_from: date | None = None

    def __post_init__(self) -> None:
        what = f"price of {self.service}/{self.plan} from {self.effective_from or 'the start'}"
        price = _money(self.monthly_price, what, PriceInvalid)
        if price != price.quantize(CENT):
            raise PriceInvalid(
                detail=f"{what} has more than two decimals ({price})",
                hint="give monthly prices in whole cents, e.g. 123.45",
            )
        object.__setattr__(self, "monthly_price", price)

    @property
    def price_cents(self) -> int:
        return int(self.monthly_price * 100)

    @property
    def starts(self) -> datetime | None:
        return None if self.effective_from is None else local_midnight(self.effective_from)


@dataclass(frozen=True, slots=True)
class PriceSegment:
    """A stretch of time in which one price applies."""

    start: datetime
    end: datetime
    monthly_price: Decimal
    effective_from: date | None

    @property
    def price_cents(self) -> int:
        return int(self.monthly_price * 100)


@dataclass(frozen=True, slots=True)
class PriceList:
    """Effective-dated prices; a later entry of the same plan replaces the earlier one."""

    entries: tuple[PriceEntry, ...] = ()
    _index: dict[tuple[str, str], tuple[list[datetime | None], list[PriceEntry]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        grouped: dict[tuple[str, str], list[PriceEntry]] = {}
        for entry in self.entries:
            grouped.setdefault((entry.service, entry.plan), []).append(entry)
        for key, items in grouped.items():
            items.sort(key=lambda e: (e.effective_from is not None, e.effective_from or date.min))
            for a, b in itertools.pairwise(items):
                if a.effective_from == b.effective_from:
                    raise PriceInvalid(
                        detail=f"price list has two prices for {key[0]}/{key[1]} from "
                        f"{a.effective_from or 'the start'} ({a.monthly_price} and "
                        f"{b.monthly_price})",
                        hint="keep one price per plan and date",
                    )
            self._index[key] = ([e.starts for e in items], items)

    @classmethod
    def from_catalog(
        cls,
        services: Iterable[ServiceDefinition | ServiceRelease],
        *,
        overrides: Iterable[PriceEntry] = (),
    ) -> PriceList:
        """The catalogue's plan prices (since always), then finance's dated prices on top."""
        defaults = [
            PriceEntry(service.name, plan.name, plan.monthly_price)
            for service in services
            for plan in service.plans
        ]
        explicit = list(overrides)
        # An explicit undated price replaces the catalogue's for that plan.
        undated = {(e.service, e.plan) for e in explicit if e.effective_from is None}
        kept = [e for e in defaults if (e.service, e.plan) not in undated]
        return cls(tuple(kept + explicit))

    def with_entries(self, *entries: PriceEntry) -> PriceList:
        return PriceList(self.entries + entries)

    def price_at(self, service: str, plan: str, instant: datetime) -> PriceEntry:
        starts, items = self._lookup(service, plan, instant)
        position = _position(starts, instant)
        if position < 0:
            first = items[0].effective_from
            raise PriceMissing(
                detail=f"no price for {service}/{plan} on "
                f"{instant.astimezone(BRUSSELS):%Y-%m-%d} (its first price is from {first})",
                hint=f"add a price for {service}/{plan} effective from that date or earlier",
            )
        return items[position]

    def segments(
        self, service: str, plan: str, start: datetime, end: datetime
    ) -> list[PriceSegment]:
        """The prices that apply between ``start`` and ``end``, split at each price change."""
        starts, items = self._lookup(service, plan, start)
        position = _position(starts, start)
        if position < 0:
            self.price_at(service, plan, start)  # raises PriceMissing naming the date
        result: list[PriceSegment] = []
        cursor = start
        while True:
            current = items[position]
            following = starts[position + 1] if position + 1 < len(items) else None
            stop = end if following is None or following >= end else following
            result.append(PriceSegment(cursor, stop, current.monthly_price, current.effective_from))
            if stop >= end:
                return result
            cursor = stop
            position += 1

    def _lookup(
        self, service: str, plan: str, instant: datetime
    ) -> tuple[list[datetime | None], list[PriceEntry]]:
        found = self._index.get((service, plan))
        if found is None:
            raise PriceMissing(
                detail=f"no price for {service}/{plan} (used on "
                f"{instant.astimezone(BRUSSELS):%Y-%m-%d}) in the price list",
                hint=f"add a price list entry for service {service}, plan {plan}",
            )
        return found


def _position(starts: list[datetime | None], instant: datetime) -> int:
    # ``None`` (since always) sorts first; the rest are ascending datetimes.
    offset = 1 if starts and starts[0] is None else 0
    dated = [s for s in starts[offset:] if s is not None]
    return offset + bisect.bisect_right(dated, instant) - 1


@dataclass(frozen=True, slots=True)
class CostPool:
    """A monthly cost shared by tenants with a sharing key.

    A ``service`` pool is shared only by the tenants that used ``service`` in the period; a
    ``platform`` pool by all active tenants. ``equal_percent`` is the part split equally under
    the ``mixed`` key (the rest goes by inhabitants); ``usage_measure`` is what the ``usage``
    key weighs.
    """

    name: str
    kind: PoolKind
    monthly_amount: Decimal
    key: SharingKey | None
    service: str | None = None
    equal_percent: Decimal | None = None
    usage_measure: UsageMeasure = UsageMeasure.INSTANCE_HOURS

    def __post_init__(self) -> None:
        where = f"cost pool {self.name!r}"
        if not self.name:
            raise CostPoolInvalid(detail="a cost pool has no name", hint="give every pool a name")
        object.__setattr__(
            self, "kind", _enum(PoolKind, self.kind, f"{where}: kind", CostPoolInvalid)
        )
        if self.key is None or self.key == "":
            raise CostPoolInvalid(
                detail=f"{where} has no sharing key",
                hint="set key to one of: " + ", ".join(k.value for k in SharingKey),
            )
        key = _enum(SharingKey, self.key, f"{where}: key", CostPoolInvalid)
        object.__setattr__(self, "key", key)
        object.__setattr__(
            self,
            "usage_measure",
            _enum(UsageMeasure, self.usage_measure, f"{where}: usage_measure", CostPoolInvalid),
        )
        object.__setattr__(
            self,
            "monthly_amount",
            _money(self.monthly_amount, f"{where}: monthly amount", CostPoolInvalid),
        )
        if self.kind is PoolKind.SERVICE and not self.service:
            raise CostPoolInvalid(
                detail=f"{where} is a service pool without a service",
                hint="name the service whose users share it, or make it a platform pool",
            )
        if self.kind is PoolKind.PLATFORM and self.service:
            raise CostPoolInvalid(
                detail=f"{where} is a platform pool but names service {self.service!r}",
                hint="leave service empty for a platform pool, or make it a service pool",
            )
        if key is SharingKey.MIXED:
            if self.equal_percent is None:
                raise CostPoolInvalid(
                    detail=f"{where} uses the mixed key without equal_percent",
                    hint="set equal_percent (0-100): the part split equally; the rest goes by "
                    "inhabitants",
                )
            try:
                percent = Decimal(str(self.equal_percent))
            except InvalidOperation as exc:
                raise CostPoolInvalid(
                    detail=f"{where}: equal_percent {self.equal_percent!r} is not a number",
                    hint="set equal_percent between 0 and 100",
                ) from exc
            if not percent.is_finite() or not 0 <= percent <= 100:
                raise CostPoolInvalid(
                    detail=f"{where}: equal_percent {self.equal_percent} is outside 0-100",
                    hint="set equal_percent between 0 and 100",
                )
            object.__setattr__(self, "equal_percent", percent)
        elif self.equal_percent is not None:
            raise CostPoolInvalid(
                detail=f"{where}: equal_percent is only used by the mixed key, not {key}",
                hint="remove equal_percent or use key: mixed",
            )

    @classmethod
    def from_shared_cost(cls, service: str, cost: SharedCost) -> CostPool:
        """The catalogue's shared cost of a service as a service pool."""
        return cls(
            name=f"{service}-shared",
            kind=PoolKind.SERVICE,
            service=service,
            monthly_amount=cost.monthly,
            key=cost.key,
            equal_percent=cost.equal_percent,
        )

    @property
    def key_label(self) -> str:
        """The key as a person reads it, e.g. ``mixed (30 % equal, 70 % inhabitants)``."""
        if self.key is SharingKey.MIXED:
            assert self.equal_percent is not None
            rest = 100 - self.equal_percent
            return f"mixed ({self.equal_percent:f} % equal, {rest:f} % inhabitants)"
        if self.key is SharingKey.USAGE:
            return f"usage ({self.usage_measure})"
        return str(self.key)


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(1000),
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(1024),
    "Mi": Decimal(1024) ** 2,
    "Gi": Decimal(1024) ** 3,
    "Ti": Decimal(1024) ** 4,
}


def _quantity(text: str) -> Decimal:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise UsageInvalid(detail=f"resource quantity {text!r} is not a Kubernetes quantity")
    return Decimal(match[1]) * _FACTORS[match[2]]


def plan_requests(plan: Plan) -> tuple[Decimal, Decimal]:
    """Requested CPU (cores) and memory (GiB) of a plan: main container requests * replicas.

    The usage events table records the plan, not the resources; the adapter uses this to fill
    ``UsageEvent.cpu``/``memory`` from the published plan.
    """
    cpu = _quantity(plan.cpu.request) * plan.replicas
    memory = _quantity(plan.memory.request) * plan.replicas / _FACTORS["Gi"]
    return cpu, memory


def _enum[E: StrEnum](
    kind: type[E],
    value: object,
    what: str,
    error: type[UsageInvalid | CostPoolInvalid] = UsageInvalid,
) -> E:
    try:
        return kind(str(value))
    except ValueError as exc:
        raise error(
            detail=f"{what} {value!r} is not one of: " + ", ".join(m.value for m in kind),
        ) from exc
