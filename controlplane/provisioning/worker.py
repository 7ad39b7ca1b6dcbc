"""Reconcile workers: threads that claim requests from the queue and reconcile them.

Each thread loops: claim a batch → reconcile the batch (``Reconciler.reconcile_batch``: one
load, target work overlapped in a small I/O thread pool shared by the worker's threads, one
recording transaction) while a heartbeat renews the batch's leases → end the batch on every
target (GitOps commits) → when nothing is due, wait for "new work", the poll tick or "stop".
New work is ``notify()`` in this process, or on PostgreSQL a ``NOTIFY`` from any process
(one listening connection per worker; ``wakes`` counts why the threads woke). ``stop()`` is
idempotent and lets the started reconciles finish; claims that were not started yet are
released for others.

On SQLite a process runs one worker thread: SQLite is the embedded single-machine mode, and
a second writer only waits on the first. Run more workers on PostgreSQL.

This module must not know about HTTP or Typer; it logs with structured ``extra`` and never
logs secrets (results carry ids, outcomes and messages only).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.db.engine import is_postgres
from controlplane.db.types import utcnow
from controlplane.errors import Conflict
from controlplane.provisioning import queueing, retention
from controlplane.provisioning.fleet.executor import FleetExecutor
from controlplane.provisioning.reconciling import Outcome, Prepared, Reconciler, Result
from controlplane.provisioning.render_pool import RenderPool
from controlplane.settings import DEFAULT_KUBERNETES_VERSION

log = logging.getLogger(__name__)


class TooManyWorkersForSQLite(Conflict):
    """SQLite supports one reconcile worker per process."""

    title = "Too many workers for SQLite"
    code = "sqlite_single_worker"


def check_concurrency(engine: Engine, concurrency: int) -> None:
    if concurrency < 1:
        raise Conflict(f"The number of workers must be at least 1 (got {concurrency}).")
    if concurrency > 1 and not is_postgres(engine):
        raise TooManyWorkersForSQLite(
            f"{concurrency} workers were asked for, but the database is SQLite, which "
            "serialises writers: run exactly one worker.",
            hint="Use --concurrency 1, or set CONTROLPLANE_DATABASE_URL to PostgreSQL to run "
            "many workers (and many worker processes).",
        )


class WakeReason(StrEnum):
    """Why an idle worker thread looked at the queue again."""

    NOTIFIED = "notified"  # a NOTIFY from some process's enqueue (PostgreSQL)
    LOCAL = "local"  # ``notify()`` in this process (the API that embeds the worker)
    TICK = "tick"  # the poll interval ran out
    STOP = "stop"


@dataclass
class _Ahead:
    """A batch claimed and prepared while the previous one is worked on (its leases beat)."""

    claims: list[queueing.Claim]
    heartbeat: queueing.Heartbeat
    prepared: Prepared


#: Batches a worker thread with render processes claims ahead of the one it works on.
AHEAD_BATCHES = 2


class Worker:
    """N threads reconciling from the queue until ``stop()``."""

    def __init__(
        self,
        engine: Engine,
        reconciler: Reconciler,
        *,
        concurrency: int = 1,
        poll_seconds: float = 2.0,
        lease_seconds: float = 120.0,
        batch_size: int = 20,
        name: str | None = None,
        on_result: Callable[[Result], None] | None = None,
        fleet: bool = True,
        io_threads: int = 4,
        heartbeat_seconds: float | None = None,
        listen: bool = True,
        render_processes: int = 0,
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
        purge_every_seconds: float = 60.0,
    ) -> None:
        check_concurrency(engine, concurrency)
        self.engine = engine
        self.reconciler = reconciler
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        #: How often a batch's leases are renewed (default: a third of the lease).
        self.heartbeat_seconds = heartbeat_seconds
        self.batch_size = batch_size
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.on_result = on_result
        self.counts: Counter[str] = Counter()
        #: Why idle threads woke up (``WakeReason`` → count).
        self.wakes: Counter[str] = Counter()
        #: Set once the process listens for NOTIFY (PostgreSQL with ``listen``).
        self.listening = threading.Event()
        self._listen = listen and is_postgres(engine)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._wake_reason = WakeReason.TICK
        self._threads: list[threading.Thread] = []
        self._counts_lock = threading.Lock()
        self._busy = 0
        # Target work of one batch (GitOps file I/O) overlaps in these threads; rendering
        # stays GIL-bound and database writes stay in the claiming thread (one per batch).
        self._pool = (
            ThreadPoolExecutor(io_threads, thread_name_prefix="reconcile-io")
            if io_threads > 1
            else None
        )
        # Rendering is GIL-bound: with ``render_processes`` > 1 a batch's renders run in
        # that many child processes (started at the first batch, ended by ``stop()``).
        self.render_processes = render_processes
        self._renders: RenderPool | None = None
        self._renders_lock = threading.Lock()
        #: Per claiming thread (owner): its next batches, claimed while a full batch is worked
        #: on so that the render processes render them meanwhile (only with them).
        self._ahead: dict[str, deque[_Ahead]] = {}
        #: Retained instances past their purge date are purged at most this often (thread 0).
        self.purge_every_seconds = purge_every_seconds
        self._next_purge = 0.0
        # Fleet upgrade runs advance from the same loop (docs/fleet.md); tests tick by hand.
        # Their parameter checks render for the platform's Kubernetes version (the setting).
        self.fleet = (
            FleetExecutor(
                engine,
                check_parameters=reconciler.renderer(kubernetes_version).resolve_parameters,
            )
            if fleet
            else None
        )

    # -- lifecycle
    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._run, name=f"reconcile-worker-{index}", args=(index,), daemon=True
            )
            self._threads.append(thread)
            thread.start()
        if self._listen:
            listener = threading.Thread(target=self._listen_loop, name="reconcile-listener")
            listener.daemon = True
            self._threads.append(listener)
            listener.start()
        log.info(
            "reconcile workers started", extra={"worker": self.name, "threads": self.concurrency}
        )

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current reconciles; safe to call any number of times."""
        self._stop.set()
        self._signal(WakeReason.STOP)
        for thread in self._threads:
            thread.join(timeout)
        if self._threads:
            log.info("reconcile workers stopped", extra={"worker": self.name})
        self._threads = []
        self.listening.clear()
        self._give_back_ahead()
        self.close_render_processes()

    def _give_back_ahead(self) -> None:
        """Release every batch claimed ahead, untouched."""
        for owner in list(self._ahead):
            for ahead in self._ahead.pop(owner, ()):
                ahead.heartbeat.__exit__(None, None, None)
                for held in ahead.claims:
                    queueing.release(self.engine, held)

    def close_render_processes(self) -> None:
        """End the render processes (idempotent; the next batch starts them again)."""
        with self._renders_lock:
            renders, self._renders = self._renders, None
        if renders is not None:
            renders.close()

    @property
    def rendered_in_children(self) -> int:
        """Renders the current render processes did (0 without them)."""
        renders = self._renders
        return renders.rendered if renders is not None else 0

    def start_render_processes(self) -> None:
        """Start the render processes now (a worker otherwise starts them at its first batch)."""
        renders = self._render_pool()
        if renders is not None:
            renders.warm()

    def _render_pool(self) -> RenderPool | None:
        if self.render_processes <= 1:
            return None
        with self._renders_lock:
            if self._renders is None:
                self._renders = RenderPool(
                    self.render_processes, server_secret=self.reconciler.server_secret
                )
            return self._renders

    def notify(self) -> None:
        """New work was recorded: wake the idle threads now instead of at the next tick."""
        self._signal(WakeReason.LOCAL)

    def _signal(self, reason: WakeReason) -> None:
        with self._counts_lock:
            self._wake_reason = reason
            self._wake.set()

    def _idle(self) -> None:
        """Wait for new work, the poll tick or stop; count why the wait ended."""
        woke = self._wake.wait(self.poll_seconds)
        with self._counts_lock:
            reason = self._wake_reason if woke else WakeReason.TICK
            self._wake.clear()
            self.wakes[reason] += 1

    def _listen_loop(self) -> None:
        """Turn NOTIFYs of any process into wake-ups (PostgreSQL); reconnects after errors."""
        listener = queueing.Listener(self.engine)
        try:
            while not self._stop.is_set():
                try:
                    listener.connect()
                    self.listening.set()
                    # Short waits, so that ``stop()`` is not held up by an idle listener.
                    if listener.wait(min(self.poll_seconds, 0.25)):
                        self._signal(WakeReason.NOTIFIED)
                except Exception:
                    self.listening.clear()
                    listener.close()
                    log.warning(
                        "listening for new work failed; polling until it reconnects",
                        extra={"worker": self.name},
                        exc_info=True,
                    )
                    self._stop.wait(self.poll_seconds)
        finally:
            listener.close()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- the loop
    def _run(self, index: int) -> None:
        owner = f"{self.name}/{index}"
        while not self._stop.is_set():
            try:
                if self.fleet is not None:
                    self.fleet.tick()
                if index == 0 and time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + self.purge_every_seconds
                    self.purge_expired()
                done = self.run_once(owner)
            except Exception:  # a bug or a database outage must not kill the thread
                log.exception("reconcile loop error", extra={"worker": owner})
                done = 0
            if done == 0:
                self._idle()

    def purge_expired(self) -> int:
        """Purge the retained instances whose purge date has passed (audited as
        ``instance.purge`` by ``system:worker``); their deletion is then reconciled."""
        with Session(self.engine) as session:
            ids = [row.id for row in retention.purge_expired(session, utcnow())]
            session.commit()
        for instance_id in ids:
            log.info("retention over: purging", extra={"instance_id": str(instance_id)})
        return len(ids)

    def run_once(self, owner: str | None = None) -> int:
        """Claim one batch and reconcile it; returns how many claims were processed.

        With render processes, a full batch (more work is likely waiting) claims and
        prepares the next batches (up to ``AHEAD_BATCHES``) as soon as its own renders are
        under way, so that the children render them while this one is written and
        recorded; they are the next calls'. Measured: with none ahead the children sat
        idle a third of a cold fleet reconcile; with one, they still ran out of work while
        the worker recorded a batch (none rendering 12-15 % of the time, 9-10 % with two);
        docs/reconciling.md.
        """
        owner = owner or f"{self.name}/0"
        queued = self._ahead.get(owner)
        ahead = queued.popleft() if queued else None
        if ahead is not None:
            claims, heartbeat, prepared = ahead.claims, ahead.heartbeat, ahead.prepared
        else:
            claims = queueing.claim(
                self.engine, owner, lease_seconds=self.lease_seconds, limit=self.batch_size
            )
            if not claims:
                return 0
            heartbeat = self._heartbeat(claims).__enter__()
            prepared = None
        renders = self._render_pool() if len(claims) > 1 else None

        def claim_ahead() -> None:
            if renders is None or len(claims) < self.batch_size:
                return
            queue = self._ahead.setdefault(owner, deque())
            # A batch that comes back short means the queue is drained: stop there.
            while len(queue) < AHEAD_BATCHES and (
                not queue or len(queue[-1].claims) >= self.batch_size
            ):
                if not self._claim_ahead(owner, renders):
                    return

        try:
            results = self.reconciler.reconcile_batch(
                claims,
                pool=self._pool,
                should_stop=self._stop.is_set,
                lost=heartbeat.lost,
                renders=renders,
                prepared=prepared,
                ahead=claim_ahead,
            )
        finally:
            heartbeat.__exit__(None, None, None)
        processed = 0
        for result in results:
            if result is not None:
                processed += 1
                self._record(result, owner)
        if processed:
            for target in self.reconciler.targets.all():
                try:
                    target.flush(f"city-platform: reconcile batch of {processed} by {owner}")
                except Exception:
                    log.exception("flushing target failed", extra={"target": target.name})
        return processed

    def _heartbeat(self, claims: list[queueing.Claim]) -> queueing.Heartbeat:
        return queueing.Heartbeat(
            self.engine, claims, lease_seconds=self.lease_seconds, interval=self.heartbeat_seconds
        )

    def _claim_ahead(self, owner: str, renders: RenderPool) -> bool:
        """Claim and prepare one more batch of ``owner`` now (its renders start at once);
        False when there was nothing to claim or it failed."""
        if self._stop.is_set():
            return False
        # Only a head start: whatever fails here must not fail the batch under way, and the
        # next run_once claims the usual way.
        try:
            claims = queueing.claim(
                self.engine, owner, lease_seconds=self.lease_seconds, limit=self.batch_size
            )
        except Exception:
            log.exception("claiming the next batch ahead failed", extra={"worker": owner})
            return False
        if not claims:
            return False
        heartbeat = self._heartbeat(claims).__enter__()
        try:
            prepared = self.reconciler.prepare(claims, renders if len(claims) > 1 else None)
        except Exception:
            log.exception("preparing the next batch failed", extra={"worker": owner})
            heartbeat.__exit__(None, None, None)
            with contextlib.suppress(Exception):  # else their leases simply expire
                for held in claims:
                    queueing.release(self.engine, held)
            return False
        self._ahead.setdefault(owner, deque()).append(_Ahead(claims, heartbeat, prepared))
        return True

    def run_until_idle(self, *, timeout: float = 60.0) -> int:
        """Reconcile in this thread until nothing is due and no deletion is under way.

        A deletion is level-based (requested, then checked again later until the target
        says it is gone), so "idle" waits for those checks too (tests, one-shot runs).
        """
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            done = self.run_once()
            total += done
            if done:
                continue
            if queueing.pending(self.engine) == 0:
                check = queueing.next_deletion_check(self.engine)
                if check is None:
                    return total
                time.sleep(min(0.2, max(0.01, _seconds_until(check))))
                continue
            time.sleep(0.01)  # due requests leased by someone else: let them finish
        self._give_back_ahead()  # out of time: nothing stays leased
        return total

    def _record(self, result: Result, owner: str) -> None:
        with self._counts_lock:
            self.counts[result.outcome] += 1
        level = logging.WARNING if result.outcome in (Outcome.FAILED,) else logging.INFO
        log.log(
            level,
            "reconciled",
            extra={
                "worker": owner,
                "instance_id": str(result.instance_id),
                "generation": result.generation,
                "outcome": str(result.outcome),
                "written": result.written,
                "pruned": result.pruned,
            },
        )
        if self.on_result is not None:
            self.on_result(result)


def _seconds_until(when: datetime) -> float:
    return (when - utcnow()).total_seconds()
