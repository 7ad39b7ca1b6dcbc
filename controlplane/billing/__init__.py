"""Billing and cost sharing: metering, price lists, cost pools, sharing keys, statements, exports.

Pure domain: plain frozen values in (usage events, tenant master data, price lists, cost pools),
statements out, money in ``Decimal`` and exact shares as fractions. See ``docs/billing.md``.

This package must not know about the database, FastAPI or Typer: the ``db``/``api``/``cli``
adapters turn rows and requests into these values and statement sets into responses and files.
"""

from __future__ import annotations

from controlplane.billing.estimates import Estimate, estimate_plan_cost
from controlplane.billing.exports import ExportFormat, export, read_csv
from controlplane.billing.metering import UsageInterval, meter
from controlplane.billing.models import (
    CostPool,
    PoolKind,
    PriceEntry,
    PriceList,
    SharingKey,
    TenantInfo,
    UsageEvent,
    UsageKind,
    UsageMeasure,
    plan_requests,
)
from controlplane.billing.periods import Period
from controlplane.billing.statements import (
    LineKind,
    Reopening,
    SetStatus,
    Statement,
    StatementLine,
    StatementSet,
    close_period,
    compute_statements,
    reopen_period,
)

__all__ = [
    "CostPool",
    "Estimate",
    "ExportFormat",
    "LineKind",
    "Period",
    "PoolKind",
    "PriceEntry",
    "PriceList",
    "Reopening",
    "SetStatus",
    "SharingKey",
    "Statement",
    "StatementLine",
    "StatementSet",
    "TenantInfo",
    "UsageEvent",
    "UsageInterval",
    "UsageKind",
    "UsageMeasure",
    "close_period",
    "compute_statements",
    "estimate_plan_cost",
    "export",
    "meter",
    "plan_requests",
    "read_csv",
    "reopen_period",
]
