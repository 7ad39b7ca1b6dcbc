"""The wire format of ``/api/v1/fleet``: fleet upgrade plans and runs.

Like ``api.schemas`` (which cityctl may import), this module imports only pydantic and the
standard library — never the database, FastAPI or a domain service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controlplane.api.schemas import RequestBody
from controlplane.tenants.names import TENANT_SLUG_MAX

Slug = Annotated[
    str,
    Field(min_length=1, max_length=TENANT_SLUG_MAX, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
Threshold = Annotated[str, Field(pattern=r"^\s*[0-9]+(\.[0-9]+)?%?\s*$", max_length=10)]
ItemStateName = Literal[
    "pending",
    "skipped_window",
    "upgrading",
    "succeeded",
    "rolling_back",
    "rolled_back",
    "failed",
    "skipped",
    "cancelled",
]
RunStatusName = Literal[
    "running", "paused", "stopped", "cancelling", "cancelled", "succeeded", "completed"
]


class FleetPlanCreate(RequestBody):
    """Plan "service S from RANGE to VERSION" over some tenants (default: all)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service: Annotated[str, Field(min_length=1, max_length=63)]
    from_: Annotated[str, Field(alias="from", min_length=1, max_length=200)]
    to: Annotated[str, Field(min_length=1, max_length=64)]
    tenants: Annotated[list[Slug], Field(max_length=1000)] = []
    wave_size: Annotated[int, Field(ge=1, le=1000)] = 10
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = 5
    pause_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 0
    #: A count (``"1"``, ``"3"``) or a percentage of the plan's instances (``"10%"``).
    failure_threshold: Threshold | Annotated[int, Field(ge=1, le=100_000)] = "1"
    ignore_maintenance_windows: bool = False
    instance_timeout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 900


class ObjectChanges(BaseModel):
    """Object ids (``apiVersion/kind/name``) the upgrade adds, changes, removes."""

    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []


class FleetPlanItemPublic(BaseModel):
    tenant: str
    instance: str
    instance_id: uuid.UUID
    wave: int
    from_version: str
    changes: ObjectChanges


class ExcludedInstance(BaseModel):
    tenant: str
    instance: str
    reason: str


class FleetPlanPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    service: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    tenants: list[str]
    wave_size: int
    max_concurrency: int
    pause_seconds: int
    failure_threshold: str
    ignore_maintenance_windows: bool
    instance_timeout_seconds: int
    waves: int
    created_by: str
    created_at: datetime
    items: list[FleetPlanItemPublic]
    excluded: list[ExcludedInstance]


class FleetPreview(BaseModel):
    """The objects one instance's upgrade would change, rendered now."""

    tenant: str
    instance: str
    from_version: str
    to_version: str
    changes: ObjectChanges


class FleetRunCreate(RequestBody):
    plan_id: uuid.UUID


class FleetRunItemPublic(BaseModel):
    tenant: str
    instance: str
    instance_id: uuid.UUID
    wave: int
    state: ItemStateName
    from_version: str
    to_version: str
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None


class FleetWave(BaseModel):
    wave: int
    counts: dict[str, int]
    items: list[FleetRunItemPublic]


class FleetRunPublic(BaseModel):
    id: uuid.UUID
    plan_id: uuid.UUID
    service: str
    to: str
    status: RunStatusName
    wave: int
    wave_not_before: datetime | None
    failures: int
    failure_limit: int
    stop_reason: str | None
    counts: dict[str, int]
    waves: list[FleetWave]
    #: Written when the run stops, is cancelled or finishes.
    report: dict[str, Any]
    started_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class FleetRunSummary(BaseModel):
    id: uuid.UUID
    plan_id: uuid.UUID
    status: RunStatusName
    wave: int
    started_by: str
    created_at: datetime
    finished_at: datetime | None


class FleetPlanSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    service: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    instances: int
    created_by: str
    created_at: datetime
