"""Fleet upgrades: plans with their instances, runs with their per-instance state

Revision ID: 0004_fleet
Revises: 0003_billing
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.db.types import JSONDoc, UTCDateTime

revision: str = "0004_fleet"
down_revision: str | None = "0003_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fleet_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=False),
        sa.Column("from_range", sa.String(length=200), nullable=False),
        sa.Column("to_version", sa.String(length=64), nullable=False),
        sa.Column("tenants", JSONDoc, nullable=False),
        sa.Column("wave_size", sa.Integer(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("pause_seconds", sa.Integer(), nullable=False),
        sa.Column("failure_threshold", sa.String(length=10), nullable=False),
        sa.Column("ignore_maintenance_windows", sa.Boolean(), nullable=False),
        sa.Column("instance_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("excluded", JSONDoc, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fleet_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_plans_service"), ["service"], unique=False)

    op.create_table(
        "fleet_plan_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=40), nullable=False),
        sa.Column("instance", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("from_version", sa.String(length=64), nullable=False),
        sa.Column("changes", JSONDoc, nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["fleet_plans.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "instance_id", name="uq_fleet_plan_instance"),
    )
    with op.batch_alter_table("fleet_plan_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_plan_items_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "fleet_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("wave_not_before", UTCDateTime(), nullable=True),
        sa.Column("failures_acknowledged", sa.Integer(), nullable=False),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("report", JSONDoc, nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["fleet_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fleet_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_runs_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fleet_runs_status"), ["status"], unique=False)

    op.create_table(
        "fleet_run_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("tenant", sa.String(length=40), nullable=False),
        sa.Column("instance", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.String(length=64), nullable=False),
        sa.Column("to_version", sa.String(length=64), nullable=False),
        sa.Column("from_revision", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("rollback_started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["instance_id"], ["instances.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["fleet_runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "instance_id", name="uq_fleet_run_instance"),
    )
    with op.batch_alter_table("fleet_run_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_run_items_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fleet_run_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_run_items_run_id"))
    op.drop_table("fleet_run_items")
    with op.batch_alter_table("fleet_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_runs_status"))
        batch_op.drop_index(batch_op.f("ix_fleet_runs_plan_id"))
    op.drop_table("fleet_runs")
    with op.batch_alter_table("fleet_plan_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_plan_items_plan_id"))
    op.drop_table("fleet_plan_items")
    with op.batch_alter_table("fleet_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fleet_plans_service"))
    op.drop_table("fleet_plans")
