"""The reconcile queue: one request row per instance, claimed with a lease.

A worker claims due requests (``due_at <= now``, no live lease) and owns them until its
lease expires; a crashed worker's lease simply runs out and another worker takes over. On
PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``, so any number of workers share
the work without waiting on each other. On SQLite the claim is a compare-and-set update
(SQLite serialises writers), and the worker refuses more than one thread per process —
SQLite is the embedded, single-machine mode.

Finishing writes the next due time (resync after success, backoff with jitter after a
failure) unless the instance's generation moved on while the worker held the lease: then
the request stays due now, so a change made during a reconcile is never lost.

This module must not know about rendering or targets.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, or_, select, update
from sqlmodel import Session, col

from controlplane.db.engine import is_postgres
from controlplane.db.types import utcnow
from controlplane.provisioning.models import Instance, ReconcileRequest


@dataclass(frozen=True)
class Claim:
    """A request this worker holds until ``lease_expires_at``."""

    request_id: uuid.UUID
    instance_id: uuid.UUID
    owner: str
    attempts: int
    lease_expires_at: datetime
    reason: str


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped (no retry storms)."""

    base: float = 2.0
    cap: float = 300.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        ceiling = float(min(self.cap, self.base * (2 ** max(0, attempts - 1))))
        # Half fixed, half jitter: never zero (which would spin) and never in lockstep.
        jitter = float((rng or random).uniform(0, ceiling / 2))
        return ceiling / 2 + jitter


def enqueue(session: Session, instance_id: uuid.UUID, *, reason: str = "changed") -> None:
    """Make the instance's request due now; never touches a lease another worker holds."""
    now = utcnow()
    request = (
        session.execute(
            select(ReconcileRequest).where(col(ReconcileRequest.instance_id) == instance_id)
        )
        .scalars()
        .first()
    )
    if request is None:
        session.add(ReconcileRequest(instance_id=instance_id, due_at=now, reason=reason))
        return
    request.due_at = now
    request.reason = reason
    request.attempts = 0
    request.requested_at = now
    session.add(request)


def claim(
    engine: Engine, owner: str, *, lease_seconds: float = 60.0, limit: int = 1
) -> list[Claim]:
    """Claim up to ``limit`` due requests for ``owner``."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    free = or_(
        col(ReconcileRequest.lease_owner).is_(None),
        col(ReconcileRequest.lease_expires_at) < now,
    )
    due = select(col(ReconcileRequest.id)).where(col(ReconcileRequest.due_at) <= now, free)
    due = due.order_by(col(ReconcileRequest.due_at)).limit(limit)
    claims: list[Claim] = []
    with Session(engine) as session:
        if is_postgres(engine):
            ids = list(session.execute(due.with_for_update(skip_locked=True)).scalars())
        else:
            ids = list(session.execute(due).scalars())
        if ids:
            # One compare-and-set update for the whole batch: on SQLite the ``free``
            # condition is what stops two claimers; on PostgreSQL the row locks already did,
            # and the condition costs nothing.
            rows = session.execute(
                update(ReconcileRequest)
                .where(col(ReconcileRequest.id).in_(ids), free)
                .values(lease_owner=owner, lease_expires_at=expires)
                .returning(
                    col(ReconcileRequest.id),
                    col(ReconcileRequest.instance_id),
                    col(ReconcileRequest.attempts),
                    col(ReconcileRequest.reason),
                )
            ).all()
            order = {request_id: position for position, request_id in enumerate(ids)}
            for row in sorted(rows, key=lambda r: order[r[0]]):
                claims.append(Claim(row[0], row[1], owner, int(row[2]), expires, str(row[3])))
        session.commit()
    return claims


def renew(engine: Engine, held: Claim, *, lease_seconds: float = 60.0) -> Claim | None:
    """Extend a lease during a long reconcile; None when the lease was lost."""
    expires = utcnow() + timedelta(seconds=lease_seconds)
    with Session(engine) as session:
        result = session.execute(
            update(ReconcileRequest)
            .where(
                col(ReconcileRequest.id) == held.request_id,
                col(ReconcileRequest.lease_owner) == held.owner,
            )
            .values(lease_expires_at=expires)
        )
        session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Claim(held.request_id, held.instance_id, held.owner, held.attempts, expires, held.reason)


def lock_for_finish(session: Session, held: Claim) -> ReconcileRequest | None:
    """The request row, locked, if this worker still holds its lease (else None).

    The reconciler writes status and revision in the same transaction, so a worker whose
    lease was taken over writes nothing.
    """
    batch = session.info.get(_BATCH_LOCKED)
    if batch is not None and held.request_id in batch:
        request: ReconcileRequest | None = batch[held.request_id]
        if request is not None and request.lease_owner != held.owner:
            return None
        return request
    query = select(ReconcileRequest).where(
        col(ReconcileRequest.id) == held.request_id,
        col(ReconcileRequest.lease_owner) == held.owner,
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        query = query.with_for_update()
    return session.execute(query).scalars().first()


_BATCH_LOCKED = "city-platform.requests-locked"


def lock_batch_for_finish(session: Session, claims: list[Claim]) -> None:
    """``lock_for_finish`` for a whole batch in one query (rows locked in id order).

    Afterwards ``lock_for_finish`` answers each of these claims from the session (None when
    the lease was lost), without another query.
    """
    if not claims:
        return
    query = (
        select(ReconcileRequest)
        .where(col(ReconcileRequest.id).in_([c.request_id for c in claims]))
        .order_by(col(ReconcileRequest.id))
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        query = query.with_for_update()
    rows = {row.id: row for row in session.execute(query).scalars()}
    found: dict[uuid.UUID, ReconcileRequest | None] = {}
    for held in claims:
        row = rows.get(held.request_id)
        found[held.request_id] = row if row is not None and row.lease_owner == held.owner else None
    session.info[_BATCH_LOCKED] = found


def finish(
    session: Session,
    request: ReconcileRequest,
    *,
    reconciled_generation: int,
    next_due_in: float | None,
    failed: bool = False,
    current_generation: int | None = None,
) -> None:
    """Release the lease and schedule the next visit (inside the caller's transaction).

    ``next_due_in`` None removes the request (the instance is gone). After a failure
    ``attempts`` grows, which the caller used to pick ``next_due_in``; after a success it
    resets.
    """
    now = utcnow()
    # The caller may pass the generation of the instance row it read in this transaction,
    # after taking the lock (saves a query per reconcile); else it is read here.
    generation = current_generation
    if generation is None:
        generation = session.execute(
            select(col(Instance.generation)).where(col(Instance.id) == request.instance_id)
        ).scalar()
    if next_due_in is None and (generation is None or generation <= reconciled_generation):
        session.delete(request)
        return
    request.lease_owner = None
    request.lease_expires_at = None
    if generation is not None and generation > reconciled_generation:
        # Desired state changed while we worked: go again at once, fresh attempts.
        request.due_at = now
        request.attempts = 0
        request.reason = "changed"
    else:
        request.due_at = now + timedelta(seconds=next_due_in or 0)
        request.attempts = request.attempts + 1 if failed else 0
        request.reason = "retry" if failed else "resync"
    session.add(request)


def release(engine: Engine, held: Claim) -> None:
    """Give a claim back untouched (a worker that stops before reconciling)."""
    with Session(engine) as session:
        session.execute(
            update(ReconcileRequest)
            .where(
                col(ReconcileRequest.id) == held.request_id,
                col(ReconcileRequest.lease_owner) == held.owner,
            )
            .values(lease_owner=None, lease_expires_at=None)
        )
        session.commit()


def pending(engine: Engine) -> int:
    """Requests due now (for tests, metrics and ``run_until_idle``)."""
    now = utcnow()
    with Session(engine) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(ReconcileRequest)
                .where(col(ReconcileRequest.due_at) <= now)
            ).scalar_one()
        )


def next_due(engine: Engine) -> datetime | None:
    with Session(engine) as session:
        value = session.execute(select(func.min(ReconcileRequest.due_at))).scalar()
    if value is not None and value.tzinfo is None:  # SQLite's func.min bypasses the type
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value
