"""The reconcile queue: one request row per instance, claimed with a lease.

A worker claims due requests (``due_at <= now``, no live lease) and owns them until its
lease expires; a crashed worker's lease simply runs out and another worker takes over. While
it works, a :class:`Heartbeat` renews the batch's leases, so a long step (a slow apply) is
never taken over by a second worker. Leases are computed on the **database clock**
(``now()`` on PostgreSQL), so workers on machines whose clocks disagree still agree on who
holds what; due times are hints and stay on each process's clock. Each claim stores a lease
holder unique to that claim (the worker's name plus a random token): finishing checks it
under the row lock, so a worker whose lease was taken over — even by a worker of the same
name — writes nothing. On
PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``, so any number of workers share
the work without waiting on each other. On SQLite the claim is a compare-and-set update
(SQLite serialises writers), and the worker refuses more than one thread per process —
SQLite is the embedded, single-machine mode.

Finishing writes the next due time (resync after success, backoff with jitter after a
failure) unless the instance's generation moved on while the worker held the lease: then
the request stays due now, so a change made during a reconcile is never lost.

On PostgreSQL, :func:`announce` sends a ``NOTIFY`` in the enqueueing transaction (delivered
on commit) and a :class:`Listener` lets idle workers of every process wake at once instead
of at their next poll tick; SQLite keeps polling (one process).

This module must not know about rendering or targets.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, or_, select, text, update
from sqlmodel import Session, col

from controlplane.db.engine import is_postgres
from controlplane.db.types import utcnow
from controlplane.provisioning.models import Instance, ReconcileRequest

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

#: The PostgreSQL channel on which enqueueing announces new work.
CHANNEL = "city_platform_reconcile"
#: The reason of a request whose instance's deletion was requested and is still under way.
DELETING = "deleting"


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
    announce(session)
    if request is None:
        session.add(
            ReconcileRequest(instance_id=instance_id, due_at=now, requested_at=now, reason=reason)
        )
        return
    request.due_at = now
    request.reason = reason
    request.attempts = 0
    request.requested_at = now
    session.add(request)


def announce(session: Session) -> None:
    """Wake the listening workers of every process when this transaction commits.

    PostgreSQL delivers a ``NOTIFY`` on commit (never for a rolled-back change) and merges
    the identical ones of a transaction; on SQLite this does nothing (one process polls).
    """
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        session.execute(text(f"NOTIFY {CHANNEL}"))


def database_now(session: Session) -> datetime:
    """The clock leases are computed on: the database's (PostgreSQL), this process's (SQLite).

    Every worker compares lease expiry with the same clock, whatever its machine's says.
    SQLite is one process on one machine, so its clock is the only one.
    """
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        value: datetime = session.execute(select(func.now())).scalar_one()
        return value.astimezone(UTC)
    return utcnow()


def lease_holder(owner: str) -> str:
    """The value one claim stores as ``lease_owner``: the worker's name and a fresh token.

    The token is the fence: a worker that lost a lease cannot match a later claim of the
    same request, not even one made under the same name (two workers in one process, or a
    name reused after a restart).
    """
    return f"{owner[:86]}#{secrets.token_hex(6)}"


def claim(
    engine: Engine, owner: str, *, lease_seconds: float = 60.0, limit: int = 1
) -> list[Claim]:
    """Claim up to ``limit`` due requests for ``owner`` (leases on the database clock)."""
    now = utcnow()
    holder = lease_holder(owner)
    claims: list[Claim] = []
    with Session(engine) as session:
        lease_now = database_now(session)
        expires = lease_now + timedelta(seconds=lease_seconds)
        free = or_(
            col(ReconcileRequest.lease_owner).is_(None),
            col(ReconcileRequest.lease_expires_at) < lease_now,
        )
        due = select(col(ReconcileRequest.id)).where(col(ReconcileRequest.due_at) <= now, free)
        due = due.order_by(col(ReconcileRequest.due_at)).limit(limit)
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
                .values(lease_owner=holder, lease_expires_at=expires)
                .returning(
                    col(ReconcileRequest.id),
                    col(ReconcileRequest.instance_id),
                    col(ReconcileRequest.attempts),
                    col(ReconcileRequest.reason),
                )
            ).all()
            order = {request_id: position for position, request_id in enumerate(ids)}
            for row in sorted(rows, key=lambda r: order[r[0]]):
                claims.append(Claim(row[0], row[1], holder, int(row[2]), expires, str(row[3])))
        session.commit()
    return claims


def renew(engine: Engine, held: Claim, *, lease_seconds: float = 60.0) -> Claim | None:
    """Extend one lease; None when the lease was lost (see :func:`renew_all`)."""
    lost = renew_all(engine, [held], lease_seconds=lease_seconds)
    if held.request_id in lost:
        return None
    with Session(engine) as session:
        expires = session.execute(
            select(col(ReconcileRequest.lease_expires_at)).where(
                col(ReconcileRequest.id) == held.request_id,
                col(ReconcileRequest.lease_owner) == held.owner,
            )
        ).scalar()
    if expires is None:
        return None
    return Claim(held.request_id, held.instance_id, held.owner, held.attempts, expires, held.reason)


def renew_all(
    engine: Engine, claims: Sequence[Claim], *, lease_seconds: float = 60.0
) -> dict[uuid.UUID, str | None]:
    """Extend every lease of ``claims`` still held, to the database's now + ``lease_seconds``.

    Returns the claims whose lease is no longer held: request id → who holds it now (None
    when nobody does: the request was finished or released). A lease that expired but that
    nobody took is simply renewed: no other worker can have worked on it. On PostgreSQL a
    row locked right now (its finish, an enqueue) is skipped and renewed at the next beat,
    so a renewal never waits on, or deadlocks with, the batch's own recording transaction.
    """
    if not claims:
        return {}
    with Session(engine) as session:
        expires = database_now(session) + timedelta(seconds=lease_seconds)
        query = (
            select(col(ReconcileRequest.id), col(ReconcileRequest.lease_owner))
            .where(col(ReconcileRequest.id).in_([c.request_id for c in claims]))
            .order_by(col(ReconcileRequest.id))
        )
        if is_postgres(engine):
            query = query.with_for_update(skip_locked=True)
        holders: dict[uuid.UUID, str | None] = {
            row[0]: row[1] for row in session.execute(query).all()
        }
        held = [
            c.request_id
            for c in claims
            if c.request_id in holders and holders[c.request_id] == c.owner
        ]
        if held:
            session.execute(
                update(ReconcileRequest)
                .where(col(ReconcileRequest.id).in_(held))
                .values(lease_expires_at=expires)
            )
        session.commit()
    return {
        c.request_id: holders[c.request_id]
        for c in claims
        if c.request_id in holders and holders[c.request_id] != c.owner
    }


class Heartbeat:
    """Renews the leases of a batch while its worker works on it (a thread).

    It beats every ``interval`` seconds (a third of the lease by default), so a lease runs
    out only when its worker is gone or cannot reach the database for that long. A lease
    found held by another worker is logged as a warning and reported by :meth:`lost`: the
    reconciler starts no further step on that instance, and its finish records nothing
    (``lock_for_finish`` checks the holder under the row lock).
    """

    def __init__(
        self,
        engine: Engine,
        claims: Iterable[Claim],
        *,
        lease_seconds: float,
        interval: float | None = None,
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.interval = interval if interval is not None else lease_seconds / 3
        self.beats = 0
        self._claims = list(claims)
        self._lost: dict[uuid.UUID, str | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self._claims:
            self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def lost(self, held: Claim) -> bool:
        """Whether this worker no longer holds ``held``'s lease (as of the last beat)."""
        with self._lock:
            return held.request_id in self._lost

    def beat(self) -> None:
        """Renew every lease still held now (the thread calls this; tests may too)."""
        with self._lock:
            held = [c for c in self._claims if c.request_id not in self._lost]
        if not held:
            return
        lost = renew_all(self.engine, held, lease_seconds=self.lease_seconds)
        with self._lock:
            self._lost.update(lost)
            self.beats += 1
        for claim in held:
            if claim.request_id in lost and lost[claim.request_id] is not None:
                log.warning(
                    "lease taken over by another worker: no further work on this instance",
                    extra={
                        "instance_id": str(claim.instance_id),
                        "worker": claim.owner,
                        "holder": lost[claim.request_id],
                    },
                )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("renewing leases failed; retrying at the next beat", exc_info=True)


class Listener:
    """A PostgreSQL connection that LISTENs on :data:`CHANNEL` (one per worker process).

    Its own autocommit connection, outside the engine's pool: a pooled connection would be
    reset (and stop listening) when returned.
    """

    def __init__(self, engine: Engine) -> None:
        if not is_postgres(engine):
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        self._args, self._params = engine.dialect.create_connect_args(engine.url)
        self._connection: psycopg.Connection[Any] | None = None

    def connect(self) -> None:
        """Connect and LISTEN (no-op when already listening)."""
        if self._connection is not None:
            return
        import psycopg

        connection = psycopg.connect(*self._args, **self._params, autocommit=True)
        connection.execute(f"LISTEN {CHANNEL}")
        self._connection = connection

    def wait(self, timeout: float) -> bool:
        """True when new work was announced within ``timeout`` seconds."""
        self.connect()
        assert self._connection is not None
        for _notification in self._connection.notifies(timeout=timeout, stop_after=1):
            return True
        return False

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


def lock_for_finish(session: Session, held: Claim) -> ReconcileRequest | None:
    """The request row, locked, if this worker still holds its lease (else None).

    The reconciler writes status and revision in the same transaction, so a worker whose
    lease was taken over writes nothing.
    """
    query = select(ReconcileRequest).where(
        col(ReconcileRequest.id) == held.request_id,
        col(ReconcileRequest.lease_owner) == held.owner,
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        query = query.with_for_update()
    return session.execute(query).scalars().first()


def lock_batch_for_finish(
    session: Session, claims: list[Claim]
) -> dict[uuid.UUID, ReconcileRequest | None]:
    """``lock_for_finish`` for a whole batch in one query (rows locked in id order).

    Request id → the locked row, None where this worker no longer holds the lease.
    """
    if not claims:
        return {}
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
    return found


def finish(
    session: Session,
    request: ReconcileRequest,
    *,
    reconciled_generation: int,
    next_due_in: float | None,
    failed: bool = False,
    current_generation: int | None = None,
    reason: str | None = None,
) -> None:
    """Release the lease and schedule the next visit (inside the caller's transaction).

    ``next_due_in`` None removes the request (the instance is gone). After a failure
    ``attempts`` grows, which the caller used to pick ``next_due_in``; after a success it
    resets. ``reason`` names the next visit when it is neither a retry nor a resync
    (:data:`DELETING`: a deletion under way is checked again).
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
        request.reason = reason or ("retry" if failed else "resync")
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


def next_deletion_check(engine: Engine) -> datetime | None:
    """When the earliest deletion under way is checked again (None: no deletion under way)."""
    with Session(engine) as session:
        value = session.execute(
            select(func.min(ReconcileRequest.due_at)).where(
                col(ReconcileRequest.reason) == DELETING
            )
        ).scalar()
    if value is not None and value.tzinfo is None:  # SQLite's func.min bypasses the type
        value = value.replace(tzinfo=UTC)
    return value


def next_due(engine: Engine) -> datetime | None:
    with Session(engine) as session:
        value = session.execute(select(func.min(ReconcileRequest.due_at))).scalar()
    if value is not None and value.tzinfo is None:  # SQLite's func.min bypasses the type
        value = value.replace(tzinfo=UTC)
    return value
