"""Fault injection and write counting for the fault proxy in front of the real apiserver.

Faults are rules matched in order against each request (method and path regular expressions);
a rule fires with a probability (drawn from a seeded generator, so runs repeat) and/or a fixed
number of times, and answers with an error status, a delay, or both. The write counter records
every POST/PUT/PATCH/DELETE the proxy receives, so tests can assert "zero writes". Nothing
here knows about the stored objects.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REASONS = {
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class FaultRule:
    """One rule: which requests, how often, and what happens to them."""

    status: int | None = None
    delay: float = 0.0
    method: str = ".*"
    path: str = ".*"
    probability: float = 1.0
    #: Fire at most this many times (``None``: unlimited).
    count: int | None = None
    message: str | None = None
    #: Seconds for the ``Retry-After`` header (429 and 503 get 0 by default).
    retry_after: int | None = None
    fired: int = 0

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status or 0, "InternalError")

    def text(self) -> str:
        return self.message or f"injected fault: {self.status} {self.reason}"


@dataclass
class Faults:
    """The rule list; deterministic for a given seed."""

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def add(
        self,
        status: int | None = None,
        *,
        delay: float = 0.0,
        method: str = ".*",
        path: str = ".*",
        probability: float = 1.0,
        count: int | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> FaultRule:
        rule = FaultRule(status, delay, method, path, probability, count, message, retry_after)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self, *, seed: int | None = None) -> None:
        with self._lock:
            self.rules.clear()
            if seed is not None:
                self.seed = seed
            self._random = random.Random(self.seed)

    @property
    def fired(self) -> int:
        return sum(r.fired for r in self.rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if not re.fullmatch(rule.method, method, re.IGNORECASE):
                    continue
                if not re.search(rule.path, path):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None


class Writes:
    """Counts write requests (POST, PUT, PATCH, DELETE) as received, faulted ones included."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_path: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.by_method: Counter[str] = Counter()
        #: (method, path, kind) in arrival order, for tests of ordering.
        self.log: list[tuple[str, str, str | None]] = []

    def record(self, method: str, path: str, kind: str | None) -> None:
        with self._lock:
            self.by_path[path] += 1
            self.by_method[method] += 1
            self.log.append((method, path, kind))
            if kind:
                self.by_kind[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    def reset(self) -> None:
        with self._lock:
            self.by_path.clear()
            self.by_kind.clear()
            self.by_method.clear()
            self.log.clear()

    def __repr__(self) -> str:
        return f"Writes(total={self.total}, by_kind={dict(self.by_kind)})"
