"""Issue 15's measure of the catalogue as composition: templates/ says each thing once.

Every file under ``templates/`` counts, shared components included. Lines are compared
after ``rstrip()``, and EVERY line counts, blank lines, ``---`` and Jinja comments
included: a copied comment or a copied block with a blank line in it is still a copy, and
skipping lines would let six shared lines hide behind one blank. The same rule as
``/tmp/dup/measure.py`` of the issue, so the figures match.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from controlplane.catalog.loading import service_files

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
RUN = 6  # a run of this many lines shared by two files is a copy
MAX_LINES = 4000
MIN_SERVICES = 12


def _files() -> dict[str, list[str]]:
    return {
        p.relative_to(TEMPLATES).as_posix(): [line.rstrip() for line in p.read_text().splitlines()]
        for p in sorted(TEMPLATES.rglob("*"))
        if p.is_file() and p.name.endswith((".j2", ".yaml", ".yml"))
    }


def _shared_runs(files: dict[str, list[str]]) -> dict[tuple[str, str], int]:
    """(file, file) -> how many RUN-line windows the two files share."""
    owners: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for name, lines in files.items():
        for i in range(len(lines) - RUN + 1):
            owners[tuple(lines[i : i + RUN])].add(name)
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for names in owners.values():
        for pair in combinations(sorted(names), 2):
            pairs[pair] += 1
    return dict(pairs)


def test_no_two_template_files_are_identical() -> None:
    by_digest: dict[str, list[str]] = defaultdict(list)
    for p in sorted(TEMPLATES.rglob("*")):
        if p.is_file():
            by_digest[hashlib.sha256(p.read_bytes()).hexdigest()].append(
                p.relative_to(TEMPLATES).as_posix()
            )
    identical = [names for names in by_digest.values() if len(names) > 1]
    assert not identical, f"{len(identical)} group(s) of identical files: {identical}"


def test_no_run_of_six_lines_is_shared_by_two_template_files() -> None:
    pairs = _shared_runs(_files())
    worst = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    report = "\n".join(f"  {n:4} windows: {a} ~ {b}" for (a, b), n in worst[:15])
    assert not pairs, (
        f"{len(pairs)} file pair(s) share runs of {RUN}+ lines "
        f"({sum(pairs.values())} shared windows); the worst:\n{report}"
    )


def test_the_templates_are_small_for_the_services_they_serve() -> None:
    files = _files()
    total = sum(len(lines) for lines in files.values())
    services = sorted(p.stem for p in service_files(ROOT / "catalog"))
    folders = {name.split("/")[0] for name in files} - {"_components"}
    assert len(services) >= MIN_SERVICES, f"{len(services)} services: {services}"
    biggest = sorted(((len(v), k) for k, v in files.items()), reverse=True)[:5]
    assert total < MAX_LINES, (
        f"{total} template lines in {len(files)} files for {len(services)} services "
        f"({len(folders)} template folders); the biggest files: {biggest}"
    )
