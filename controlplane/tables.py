"""Import every table so that ``SQLModel.metadata`` is complete (Alembic, create_all)."""

from __future__ import annotations

from sqlmodel import SQLModel

from controlplane.auth import models as auth_models
from controlplane.billing import invoice_records as billing_invoice_records
from controlplane.billing import metering_records as billing_metering_records
from controlplane.billing import records as billing_records
from controlplane.catalog import records as catalog_records
from controlplane.provisioning import models as provisioning_models
from controlplane.provisioning.fleet import models as fleet_models
from controlplane.tenants import models as tenant_models

metadata = SQLModel.metadata

__all__ = [
    "auth_models",
    "billing_invoice_records",
    "billing_metering_records",
    "billing_records",
    "catalog_records",
    "fleet_models",
    "metadata",
    "provisioning_models",
    "tenant_models",
]
