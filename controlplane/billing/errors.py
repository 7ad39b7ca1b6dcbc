"""Errors of billing: each one names what to fix.

Every class is a subclass of a :mod:`controlplane.errors` class, so that the API adapter maps
it to the right HTTP status and cityctl to the right exit code. The class docstring is the
default message; the raising code gives a ``detail`` naming the period, pool, tenant, price
or instance at fault and, where there is an obvious fix, a ``hint``.

This module must not know about the database, FastAPI or Typer.
"""

from __future__ import annotations

from controlplane.errors import Conflict, InvalidInput


class PeriodInvalid(InvalidInput):
    """The billing period is not a valid month; write it as YYYY-MM."""

    title = "Invalid billing period"
    code = "period_invalid"


class PeriodInFuture(InvalidInput):
    """The billing period has not started yet."""

    title = "Billing period in the future"
    code = "period_in_future"


class PeriodNotEnded(Conflict):
    """The billing period has not ended yet, so it cannot be closed."""

    title = "Billing period not ended"
    code = "period_not_ended"


class PeriodAlreadyClosed(Conflict):
    """The billing period is already closed."""

    title = "Billing period already closed"
    code = "period_closed"


class PeriodNotClosed(Conflict):
    """The billing period is not closed, so there is nothing to reopen."""

    title = "Billing period not closed"
    code = "period_not_closed"


class ReopenReasonRequired(InvalidInput):
    """Reopening a closed billing period needs a reason."""

    title = "Reopen reason required"
    code = "reopen_reason_required"


class StatementDigestMismatch(Conflict):
    """The statement set does not match its digest: it was changed after it was closed."""

    title = "Statement digest mismatch"
    code = "statement_digest_mismatch"


class CostPoolInvalid(InvalidInput):
    """A cost pool is not valid."""

    title = "Invalid cost pool"
    code = "cost_pool_invalid"


class PriceInvalid(InvalidInput):
    """A price list entry is not valid."""

    title = "Invalid price"
    code = "price_invalid"


class PriceMissing(InvalidInput):
    """There is no price for a service plan that was used in the period."""

    title = "Price missing"
    code = "price_missing"


class InhabitantsMissing(InvalidInput):
    """A tenant has no number of inhabitants, which its sharing key needs."""

    title = "Inhabitants missing"
    code = "inhabitants_missing"


class TenantInvalid(InvalidInput):
    """The tenant master data given to billing is not valid."""

    title = "Invalid tenant data"
    code = "tenant_invalid"


class UsageInvalid(InvalidInput):
    """The usage events cannot be metered."""

    title = "Invalid usage events"
    code = "usage_invalid"


class ExportInvalid(InvalidInput):
    """The export format or the file to read back is not valid."""

    title = "Invalid export"
    code = "export_invalid"


class PlanUnknown(InvalidInput):
    """The service or plan is not in the published catalogue."""

    title = "Unknown service plan"
    code = "plan_unknown"


class PriceExists(Conflict):
    """There already is a price for this service plan from this date."""

    title = "Price exists"
    code = "price_exists"


class CostPoolExists(Conflict):
    """There already is a cost pool with this name from this month."""

    title = "Cost pool exists"
    code = "cost_pool_exists"
