"""Run every benchmark module, print one table, write the figures as JSON."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import tests.benchmarks as pkg
from tests.benchmarks import Figure

RESULTS = Path(".bench/results.json")


def main(selected: list[str]) -> int:
    console = Console()
    figures: list[Figure] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        area = info.name.removeprefix("bench_")
        if selected and area not in selected:
            continue
        module = importlib.import_module(f"tests.benchmarks.{info.name}")
        console.print(f"[bold]running {area}…[/bold]")
        start = time.perf_counter()
        figures.extend(module.run())
        console.print(f"  {area} done in {time.perf_counter() - start:.1f} s")
    table = Table(title="City Platform benchmarks")
    for column in ("area", "figure", "value", "unit", "target"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for f in figures:
        table.add_row(f.area, f.name, f"{f.value:,.3f}", f.unit, f.target)
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([f.as_dict() for f in figures], indent=2))
    console.print(f"figures written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
