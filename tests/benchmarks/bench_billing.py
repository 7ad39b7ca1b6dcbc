"""Billing: a year of statements for the Flemish fleet.

285 municipalities (Source: Statbel, CC BY 4.0) x 8 instances, plan changes on 10 % of the
instances every month, eight service pools with every sharing key and a mixed platform pool:
compute, close (digest) and export every month of 2024. Targets: < 3 s and < 300 MB.
"""

from __future__ import annotations

import time
import tracemalloc

from controlplane.billing import Period, StatementSet, close_period, compute_statements
from controlplane.billing.exports import to_json, to_xlsx
from controlplane.billing.metering import group_by_instance
from tests.benchmarks import Figure
from tests.billing.fleet import NOW, Fleet, flemish_fleet

AREA = "billing"


def _year(fleet: Fleet) -> list[StatementSet]:
    grouped = group_by_instance(fleet.events)
    return [
        close_period(
            compute_statements(
                period=Period(2024, month),
                tenants=fleet.tenants,
                events=grouped,
                prices=fleet.prices,
                pools=fleet.pools,
                now=NOW,
            ),
            closed_by="finance",
            at=NOW,
        )
        for month in range(1, 13)
    ]


def run() -> list[Figure]:
    fleet = flemish_fleet()
    # Time without tracing (tracemalloc slows Python code several times), then trace memory.
    start = time.perf_counter()
    closed = _year(fleet)
    year = time.perf_counter() - start
    tracemalloc.start()
    _year(fleet)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    start = time.perf_counter()
    json_bytes = to_json(closed[-1])
    json_time = time.perf_counter() - start
    start = time.perf_counter()
    to_xlsx(closed[-1])
    xlsx_time = time.perf_counter() - start
    lines = sum(len(s.lines) for month in closed for s in month.statements)
    return [
        Figure(AREA, "year of statements (compute + close), 285 tenants", year, "s", "< 3 s"),
        Figure(AREA, "peak memory (tracemalloc) for the year", peak / 2**20, "MB", "< 300 MB"),
        Figure(AREA, "statement lines in the year", lines, "lines"),
        Figure(AREA, "usage events", len(fleet.events), "events"),
        Figure(AREA, "JSON export of one month", json_time, "s"),
        Figure(AREA, "JSON export size", len(json_bytes) / 2**20, "MB"),
        Figure(AREA, "XLSX export of one month (288 sheets)", xlsx_time, "s"),
    ]
