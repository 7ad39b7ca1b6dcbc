"""Tables of fleet upgrades: plans (what would change), runs (how far the rollout got).

A plan is frozen when it is made: the affected instances, their wave, the version they
start from and the objects that would change. A run executes one plan; every decision the
executor takes is a row update here, so a run survives a restart of the control plane and
any worker can pick it up (``provisioning.fleet.executor.tick``).

This module must not know about HTTP, rendering or how the executor is scheduled.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow


class RunStatus(StrEnum):
    RUNNING = "running"
    #: Paused by an operator: in-flight upgrades finish, nothing new starts.
    PAUSED = "paused"
    #: Stopped because failures reached the threshold (resume continues).
    STOPPED = "stopped"
    #: Cancel requested: in-flight upgrades and rollbacks finish, nothing new starts.
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    #: Every instance upgraded.
    SUCCEEDED = "succeeded"
    #: Every instance done, some failed (and were rolled back).
    COMPLETED = "completed"


#: Runs the executor still has to look at.
ACTIVE_RUN_STATUSES = (
    RunStatus.RUNNING,
    RunStatus.PAUSED,
    RunStatus.STOPPED,
    RunStatus.CANCELLING,
)


class ItemState(StrEnum):
    PENDING = "pending"
    #: Its tenant's maintenance window is closed: it waits, the run goes on with others.
    SKIPPED_WINDOW = "skipped_window"
    UPGRADING = "upgrading"
    SUCCEEDED = "succeeded"
    #: The upgrade failed and the previous revision's inputs were recorded as desired state.
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    #: Failed and not rolled back (refused by admission, or the rollback failed): look at it.
    FAILED = "failed"
    #: No longer applies (deleted, or moved to another version by someone else).
    SKIPPED = "skipped"
    #: Not started because the run was cancelled (still on its old version).
    CANCELLED = "cancelled"


IN_FLIGHT_STATES = (ItemState.UPGRADING, ItemState.ROLLING_BACK)
FAILURE_STATES = (ItemState.FAILED, ItemState.ROLLING_BACK, ItemState.ROLLED_BACK)
FINAL_STATES = (
    ItemState.SUCCEEDED,
    ItemState.ROLLED_BACK,
    ItemState.FAILED,
    ItemState.SKIPPED,
    ItemState.CANCELLED,
)


class FleetPlan(SQLModel, table=True):
    """ "Service S from RANGE to VERSION over these tenants", with its rollout settings."""

    __tablename__ = "fleet_plans"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    service: str = Field(sa_column=Column(String(63), nullable=False, index=True))
    from_range: str = Field(sa_column=Column(String(200), nullable=False))
    to_version: str = Field(sa_column=Column(String(64), nullable=False))
    #: Tenant slugs the plan was limited to; empty = every tenant.
    tenants: list[str] = Field(default_factory=list, sa_column=Column(JSONDoc, nullable=False))
    wave_size: int = Field(sa_column=Column(Integer, nullable=False))
    max_concurrency: int = Field(sa_column=Column(Integer, nullable=False))
    pause_seconds: int = Field(sa_column=Column(Integer, nullable=False))
    #: ``"3"`` (failures) or ``"10%"`` (of the plan's instances).
    failure_threshold: str = Field(sa_column=Column(String(10), nullable=False))
    ignore_maintenance_windows: bool = Field(sa_column=Column(Boolean, nullable=False))
    instance_timeout_seconds: int = Field(sa_column=Column(Integer, nullable=False))
    #: Instances in the range that cannot take part: ``[{"tenant", "instance", "reason"}]``.
    excluded: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONDoc, nullable=False)
    )
    created_by: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class FleetPlanItem(SQLModel, table=True):
    """One affected instance of a plan and the objects its upgrade would change."""

    __tablename__ = "fleet_plan_items"
    __table_args__ = (UniqueConstraint("plan_id", "instance_id", name="uq_fleet_plan_instance"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    plan_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("fleet_plans.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    instance_id: uuid.UUID = Field(sa_column=Column(ForeignKey("instances.id"), nullable=False))
    tenant_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tenants.id"), nullable=False))
    tenant: str = Field(sa_column=Column(String(40), nullable=False))
    instance: str = Field(sa_column=Column(String(40), nullable=False))
    position: int = Field(sa_column=Column(Integer, nullable=False))
    wave: int = Field(sa_column=Column(Integer, nullable=False))
    from_version: str = Field(sa_column=Column(String(64), nullable=False))
    #: ``{"added": [...], "changed": [...], "removed": [...]}`` object ids, or ``{"error": …}``.
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))


class FleetRun(SQLModel, table=True):
    """One execution of a plan; the executor's whole memory."""

    __tablename__ = "fleet_runs"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    plan_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("fleet_plans.id"), nullable=False, index=True)
    )
    status: RunStatus = Field(
        default=RunStatus.RUNNING, sa_column=Column(String(16), nullable=False, index=True)
    )
    #: The wave being rolled out (0-based).
    wave: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    #: The current wave may not start before this time (pause between waves).
    wave_not_before: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    #: Failures already seen by the operator at the last resume; the threshold counts the rest.
    failures_acknowledged: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    stop_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Written when the run stops, is cancelled or finishes: counts and the failed instances.
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))
    started_by: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class FleetRunItem(SQLModel, table=True):
    """Where one instance is in a run."""

    __tablename__ = "fleet_run_items"
    __table_args__ = (UniqueConstraint("run_id", "instance_id", name="uq_fleet_run_instance"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    run_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("fleet_runs.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    instance_id: uuid.UUID = Field(sa_column=Column(ForeignKey("instances.id"), nullable=False))
    tenant_id: uuid.UUID = Field(sa_column=Column(ForeignKey("tenants.id"), nullable=False))
    tenant: str = Field(sa_column=Column(String(40), nullable=False))
    instance: str = Field(sa_column=Column(String(40), nullable=False))
    position: int = Field(sa_column=Column(Integer, nullable=False))
    wave: int = Field(sa_column=Column(Integer, nullable=False))
    state: ItemState = Field(
        default=ItemState.PENDING, sa_column=Column(String(16), nullable=False)
    )
    from_version: str = Field(sa_column=Column(String(64), nullable=False))
    to_version: str = Field(sa_column=Column(String(64), nullable=False))
    #: The revision applied before the upgrade (the rollback goes back to its inputs).
    from_revision: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    #: The instance generation the fleet recorded (upgrade, then rollback).
    generation: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    rollback_started_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
