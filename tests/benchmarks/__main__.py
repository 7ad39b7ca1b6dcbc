"""Run every benchmark module, print one table, write the figures as JSON.

``python -m tests.benchmarks [area …]`` runs ``tests/benchmarks/bench_<area>.py`` (all when
no area is named), each in a fresh interpreter: an area's figures must not depend on the
areas before it (docs/benchmarks.md, "Running"). The table lists every figure; figures whose
unit is ``x`` are ratios (e.g. Helm against the platform) and are repeated in a short summary
under it. The JSON lands in ``.bench/results.json`` (``BENCH_RESULTS`` overrides the path): a
list of figures, each ``{area, name, value, unit, target}``, as before; run metadata goes
beside it in ``.bench/run.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

import tests.benchmarks as pkg
from tests.benchmarks import Figure

RESULTS = Path(os.environ.get("BENCH_RESULTS", ".bench/results.json"))
RATIO_UNIT = "x"


def main(selected: list[str]) -> int:
    console = Console()
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        area = info.name.removeprefix("bench_")
        if selected and area not in selected:
            continue
        console.print(f"[bold]running {area}…[/bold]")
        start = time.perf_counter()
        figures.extend(_run_area(area))
        durations[area] = time.perf_counter() - start
        console.print(f"  {area} done in {durations[area]:.1f} s")
    table = Table(title="City Platform benchmarks")
    for column in ("area", "figure", "value", "unit", "target"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for f in figures:
        table.add_row(f.area, f.name, f"{f.value:,.3f}", f.unit, f.target)
    console.print(table)
    ratios = [f for f in figures if f.unit == RATIO_UNIT]
    if ratios:
        summary = Table(title="Ratios (>1: the first named is slower or writes more)")
        summary.add_column("ratio")
        summary.add_column("value", justify="right")
        for f in ratios:
            summary.add_row(f"{f.area}: {f.name}", f"{f.value:,.2f}x")
        console.print(summary)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([f.as_dict() for f in figures], indent=2))
    meta = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "areas": {area: round(seconds, 2) for area, seconds in durations.items()},
    }
    (RESULTS.parent / "run.json").write_text(json.dumps(meta, indent=2))
    console.print(f"figures written to {RESULTS}")
    return 0


def _run_area(area: str) -> list[Figure]:
    """The figures of one area, measured in a child interpreter (its output goes to ours)."""
    with tempfile.TemporaryDirectory(prefix="bench-area-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", "tests.benchmarks", "--one", area, str(out)]
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise SystemExit(f"benchmark area {area!r} failed (exit status {done.returncode})")
        return [Figure(**item) for item in json.loads(out.read_text())]


def _one(area: str, out: Path) -> int:
    """Run one area here and write its figures to ``out`` (what ``_run_area`` starts)."""
    module = importlib.import_module(f"tests.benchmarks.bench_{area}")
    out.write_text(json.dumps([f.as_dict() for f in module.run()]))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        sys.exit(_one(sys.argv[2], Path(sys.argv[3])))
    sys.exit(main(sys.argv[1:]))
