"""Retry policy of the Kubernetes port: exponential backoff with full jitter.

What is retried: connection errors and timeouts, 429 (waiting at least ``Retry-After``), 5xx, and
409s that are not server-side apply field conflicts (optimistic concurrency). Everything else is
final. Attempts and total time are both bounded; when the budget is spent the last failure is
returned to the caller, who raises ``TargetUnavailable``. This module must not know about
objects or the client library's types beyond "a callable that may fail".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the port tries before it calls a target unavailable."""

    #: Attempts per request, the first one included.
    attempts: int = 6
    #: Backoff base: the n-th retry waits up to ``base_delay * 2**n`` seconds.
    base_delay: float = 0.2
    #: Ceiling of one wait.
    max_delay: float = 10.0
    #: Ceiling of all attempts and waits of one request together.
    deadline: float = 60.0
    #: Timeout of one HTTP request (connect + read), in seconds.
    request_timeout: float = 30.0
    #: Pause between polls while waiting for a namespace to disappear.
    poll_interval: float = 1.0
    #: Seed of the jitter (None: from the OS); tests pin it to repeat runs.
    seed: int | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**retry)]."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        return rng.uniform(0.0, ceiling)


class Budget:
    """The attempts and time left for one logical request."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self.attempt = 0
        self._started = policy.clock()

    def remaining(self) -> float:
        return self.policy.deadline - (self.policy.clock() - self._started)

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next attempt; False when the budget does not allow one."""
        self.attempt += 1
        if self.attempt >= self.policy.attempts:
            return False
        delay = self.policy.backoff(self.attempt - 1, self._rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if delay >= self.remaining():
            return False
        self.policy.sleep(delay)
        return True
