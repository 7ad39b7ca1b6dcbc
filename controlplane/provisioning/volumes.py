"""The storage floor of an instance: the largest storage its applied revisions rendered with.

Volumes never shrink (``controlplane.rendering.storage`` holds the rule): every render of an
instance raises the plan's storage to this floor, and a plan change or rollback to a plan
with less storage is told that the volumes keep their size. The floor is derived from the
applied revisions, so it is the same for the reconciler, the API and a fleet preview, and
it survives rollbacks (a rollback is a new revision on top, never a rewrite of history).

This module must not know about HTTP or targets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import Session, col, select

from controlplane.catalog.models import Plan
from controlplane.provisioning.models import Revision, RevisionOutcome
from controlplane.rendering.storage import kept_message, largest, same, with_floor


def floor_of(revisions: Iterable[Revision]) -> str | None:
    """The largest storage among the *applied* revisions (None when there is none)."""
    return largest(r.storage for r in revisions if r.outcome == RevisionOutcome.APPLIED)


def storage_floor(session: Session, instance_id: uuid.UUID) -> str | None:
    """The storage floor of one instance, read from its revisions."""
    sizes = session.exec(
        select(Revision.storage).where(
            Revision.instance_id == instance_id,
            Revision.outcome == RevisionOutcome.APPLIED,
            col(Revision.storage).is_not(None),
        )
    ).all()
    return largest(sizes)


def kept_storage_warning(plan: Plan, floor: str | None) -> str | None:
    """The sentence for the tenant when ``plan`` has less storage than the volumes keep."""
    kept = with_floor(plan.storage, floor)
    if same(kept, plan.storage):
        return None
    return kept_message(plan.name, plan.storage, kept)
