"""Per-invocation state: which context to use, and a client built from it."""

from __future__ import annotations

from dataclasses import dataclass

from cli.client import ApiClient
from cli.config import active_context


@dataclass
class State:
    context_name: str | None = None
    timeout: float = 30.0

    def client(self) -> ApiClient:
        return ApiClient(active_context(self.context_name), timeout=self.timeout)


state = State()
