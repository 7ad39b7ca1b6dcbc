"""Published service versions as stored: immutable releases plus their lifecycle status."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from controlplane.catalog.models import ServiceRelease, VersionStatus
from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow


class PublishedVersion(SQLModel, table=True):
    """One published version. ``release`` and ``digest`` never change after publishing;
    only the lifecycle columns (status, support end) do."""

    __tablename__ = "published_versions"
    __table_args__ = (UniqueConstraint("service", "version", name="uq_published_service_version"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    service: str = Field(sa_column=Column(String(63), nullable=False, index=True))
    version: str = Field(sa_column=Column(String(64), nullable=False))
    #: ``ServiceRelease.model_dump(mode="json")``: definition and template bundle text.
    release: dict[str, Any] = Field(sa_column=Column(JSONDoc, nullable=False))
    digest: str = Field(sa_column=Column(String(80), nullable=False))
    status: VersionStatus = Field(
        default=VersionStatus.ACTIVE, sa_column=Column(String(12), nullable=False)
    )
    support_ends: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    status_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    published_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    published_by: str | None = Field(default=None, max_length=200)

    def to_release(self) -> ServiceRelease:
        return ServiceRelease.model_validate(self.release)
