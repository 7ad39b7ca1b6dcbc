"""Municipalities (tenants) and their master data."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    OFFBOARDED = "offboarded"


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    #: DNS label used in namespaces (``<slug>--<instance>``), host names and URLs.
    slug: str = Field(sa_column=Column(String(40), unique=True, nullable=False))
    name: str = Field(max_length=200)
    #: Statbel NIS code: the municipality's identity (unique).
    nis_code: str = Field(sa_column=Column(String(5), unique=True, nullable=False))
    inhabitants: int | None = Field(default=None, ge=0)
    inhabitants_year: int | None = None
    #: KBO/BCE enterprise number, for invoices, ten digits (``0207451227``; shown
    #: ``0207.451.227``).
    enterprise_number: str | None = Field(default=None, max_length=12)
    #: Postal address, for invoices (``country`` is an ISO 3166-1 alpha-2 code).
    street: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=100)
    country: str = Field(
        default="BE", sa_column=Column(String(2), nullable=False, server_default="BE")
    )
    #: Contacts: ``[{"role": "technical", "name": …, "email": …}]``.
    contacts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONDoc))
    status: TenantStatus = Field(
        default=TenantStatus.ACTIVE, sa_column=Column(String(12), nullable=False)
    )
    #: An intercommunale or other group that is billed together.
    group: str | None = Field(default=None, max_length=100)
    max_instances: int = Field(default=20, ge=0)
    max_cpu: str = Field(default="64", max_length=20)
    max_memory: str = Field(default="256Gi", max_length=20)
    #: Default target (by name) for new instances; None = the platform default.
    default_target: str | None = Field(default=None, max_length=63)
    #: Maintenance window for fleet upgrades:
    #: ``{"days": ["sat","sun"], "start": "22:00", "end": "06:00"}``,
    #: Europe/Brussels time. Empty = any time.
    maintenance_window: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc))
    #: Bumped on every change; the ETag of the tenant.
    version: int = Field(default=1)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class TenantDomain(SQLModel, table=True):
    """A DNS domain an operator granted to one tenant: its instances may use the domain
    and any subdomain of it as host names. A domain belongs to at most one tenant."""

    __tablename__ = "tenant_domains"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    domain: str = Field(sa_column=Column(String(253), unique=True, nullable=False))
    granted_by: str = Field(default="", sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
