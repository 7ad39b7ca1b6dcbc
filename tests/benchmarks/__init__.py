"""Benchmarks: scripts that print figures (never timed assertions).

Each ``bench_<area>.py`` module has ``run() -> list[Figure]``; ``python -m tests.benchmarks``
runs them all, prints one table and writes ``.bench/results.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    area: str
    name: str
    value: float
    unit: str
    target: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
