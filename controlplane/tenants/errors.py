"""Errors of tenant (municipality) master data."""

from __future__ import annotations

from controlplane.errors import Conflict, InvalidInput, NotFound


class TenantNotFound(NotFound):
    """There is no such tenant (or it is not visible to you)."""

    title = "Tenant not found"
    code = "tenant_not_found"


class TenantExists(Conflict):
    """A tenant with this slug or NIS code already exists."""

    title = "Tenant exists"
    code = "tenant_exists"


class TenantInvalid(InvalidInput):
    """The tenant data is not valid."""

    title = "Invalid tenant"
    code = "tenant_invalid"


class MunicipalityCsvInvalid(InvalidInput):
    """The municipality CSV has errors."""

    title = "Invalid municipality CSV"
    code = "csv_invalid"
