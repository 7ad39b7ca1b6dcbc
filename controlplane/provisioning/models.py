"""Instances, their revisions, targets, the reconcile queue and usage events.

Desired state (what the municipality asked for) lives on :class:`Instance` and bumps
``generation``; observed state is its ``status`` written by the reconciler only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from controlplane.db.types import JSONDoc, UTCDateTime, new_id, utcnow
from controlplane.settings import DEFAULT_KUBERNETES_VERSION


class Phase(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    #: Written where a GitOps controller applies it, by a target that cannot observe the
    #: cluster: the platform cannot tell whether it runs (never reported as Ready).
    COMMITTED = "Committed"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    DELETING = "Deleting"
    DELETED = "Deleted"
    #: Deleted without purge: workloads stopped, data (volumes, Secrets, namespace) kept
    #: until ``purge_after``; ``cityctl instance restore`` brings it back.
    RETAINED = "Retained"


class TargetKind(StrEnum):
    KUBERNETES = "kubernetes"
    GITOPS = "gitops"


class Target(SQLModel, table=True):
    """Where stacks go: a Kubernetes cluster or a GitOps directory."""

    __tablename__ = "targets"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(sa_column=Column(String(63), unique=True, nullable=False))
    kind: TargetKind = Field(sa_column=Column(String(12), nullable=False))
    #: kubernetes: ``{"kubeconfig": path|None, "context": name|None, "in_cluster": bool}``;
    #: gitops: ``{"path": dir, "git_commit": bool}``. Never credentials themselves.
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDoc, nullable=False))
    #: Kubernetes minor version the target runs (rendered objects are validated for it).
    kubernetes_version: str = Field(default=DEFAULT_KUBERNETES_VERSION, max_length=10)
    #: Services this target may host; empty = all.
    services: list[str] = Field(default_factory=list, sa_column=Column(JSONDoc, nullable=False))
    #: What the operator declared runs there (``rendering.target_ref.CAPABILITIES``).
    capabilities: list[str] = Field(
        default_factory=list, sa_column=Column(JSONDoc, nullable=False, server_default="[]")
    )
    is_default: bool = Field(default=False)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class TargetGrant(SQLModel, table=True):
    """An operator allowed a tenant to place instances on a target (the platform default
    target needs no grant: it is where every tenant's instances go when nothing is asked)."""

    __tablename__ = "target_grants"

    target_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True)
    )
    tenant_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, index=True)
    )
    granted_by: str = Field(sa_column=Column(String(200), nullable=False))
    granted_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Instance(SQLModel, table=True):
    """One service stack of one tenant."""

    __tablename__ = "instances"
    __table_args__ = (
        # A name is unique among the tenant's live instances; a deleted one frees it.
        Index(
            "uq_instances_live_name",
            "tenant_id",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        # A namespace belongs to one live instance per target (tenants never share one).
        Index(
            "uq_instances_live_namespace",
            "target",
            "namespace",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        # A host name routes to one live instance, across all tenants and targets.
        Index(
            "uq_instances_live_hostname",
            "hostname",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    tenant_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(40), nullable=False))
    service: str = Field(sa_column=Column(String(63), nullable=False, index=True))
    #: Desired (pinned) service version.
    version: str = Field(sa_column=Column(String(64), nullable=False))
    plan: str = Field(sa_column=Column(String(63), nullable=False))
    parameters: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONDoc, nullable=False)
    )
    target: str = Field(sa_column=Column(String(63), nullable=False))
    namespace: str = Field(sa_column=Column(String(63), nullable=False))
    #: The host name the instance answers on (decided at admission: its ``hostname``
    #: parameter, else ``<instance>.<tenant>.<platform domain>``); None for a service
    #: without a ``hostname`` parameter. Unique among live instances.
    hostname: str | None = Field(default=None, sa_column=Column(String(253), nullable=True))
    #: Bumped on every change of desired state (create, update, rollback, delete).
    generation: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    #: True once deletion was requested.
    deletion_requested: bool = Field(default=False)
    #: Delete is refused while set (``cityctl instance unprotect`` lifts it, audited). Set
    #: at creation on request or by a plan declaring ``deletion_protection``; not desired
    #: state of the stack: changing it bumps no generation and queues no reconcile.
    deletion_protection: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    #: How often the administrator credential was rotated (``cityctl instance credentials
    #: --rotate``): the renderer derives it from ``<name>#<n>`` when n > 0.
    credentials_rotation: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    #: Created from a backup of another instance of the tenant (``instance create
    #: --restore-from``): ``{"instance", "instance_id", "namespace", "time"}`` (time: ISO
    #: 8601 or None for the latest). Kept for the instance's life: its database Cluster
    #: bootstraps from that recovery once, and the rendered stack must stay the same.
    restore_from: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONDoc, nullable=True)
    )
    #: Set while the instance is retained (deleted without purge): its workloads are
    #: stopped, its data kept until then; the worker purges it afterwards. Desired state.
    purge_after: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # -- observed state, written by the reconciler only
    phase: Phase = Field(default=Phase.PENDING, sa_column=Column(String(16), nullable=False))
    observed_generation: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    #: Kubernetes-style conditions:
    #: ``[{"type", "status", "reason", "message", "lastTransitionTime"}]``.
    conditions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONDoc, nullable=False)
    )
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Number of the revision that is applied now (0 = none yet).
    current_revision: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class RevisionOutcome(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class Revision(SQLModel, table=True):
    """The history of an instance, like Helm's: inputs, what was applied, how it went."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("instance_id", "number", name="uq_revision_number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    instance_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("instances.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    number: int = Field(sa_column=Column(Integer, nullable=False))
    generation: int = Field(sa_column=Column(Integer, nullable=False))
    version: str = Field(sa_column=Column(String(64), nullable=False))
    plan: str = Field(sa_column=Column(String(63), nullable=False))
    parameters: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONDoc, nullable=False)
    )
    #: Digest of the rendered objects (``RenderedStack.digest``).
    digest: str = Field(sa_column=Column(String(80), nullable=False))
    #: Object id → object digest of everything applied (the prune inventory).
    inventory: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSONDoc, nullable=False)
    )
    #: The storage its plan-dependent volumes were rendered with: the plan's, raised to the
    #: instance's storage floor (volumes never shrink; ``controlplane.rendering.storage``).
    #: The floor of an instance is the largest of these over its applied revisions.
    storage: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    outcome: RevisionOutcome = Field(
        default=RevisionOutcome.PENDING, sa_column=Column(String(12), nullable=False)
    )
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: Set when this revision re-applies the inputs of an earlier one.
    rollback_of: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ReconcileRequest(SQLModel, table=True):
    """A unit of reconcile work with a lease (one live row per instance)."""

    __tablename__ = "reconcile_requests"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    instance_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("instances.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    #: Not before this time (backoff after failures, periodic resync).
    due_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )
    lease_owner: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    reason: str = Field(default="changed", sa_column=Column(String(40), nullable=False))
    requested_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class UsageKind(StrEnum):
    STARTED = "started"
    PLAN_CHANGED = "plan_changed"
    #: The workloads stopped, the data is kept (storage only is billed from here).
    RETAINED = "retained"
    STOPPED = "stopped"


class UsageEvent(SQLModel, table=True):
    """The billing truth (never edited, never derived from audit logs)."""

    __tablename__ = "usage_events"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    instance_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("instances.id"), nullable=False, index=True)
    )
    tenant_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tenants.id"), nullable=False, index=True)
    )
    service: str = Field(sa_column=Column(String(63), nullable=False))
    plan: str = Field(sa_column=Column(String(63), nullable=False))
    kind: UsageKind = Field(sa_column=Column(String(16), nullable=False))
    at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )
