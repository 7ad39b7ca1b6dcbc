"""The golden renders of the shipped catalogue: every service x version x plan, object by object.

``golden.json`` records, for each stack, the digest of every object the renderer makes of it
(offline secret, the check tenant, default parameters; see ``rendering.catalog_checks``).
``test_golden.py`` renders the catalogue again and compares: a change of templates or of the
renderer that changes any object shows up here, by stack and object.

Refactoring the templates (issue 15: shared components, versions as data, injected policy)
must keep every object the same, except the defects fixed on purpose, which the test lists.
To see *what* changed, render a past commit's catalogue next to today's::

    .venv/bin/python -m tests.catalog.golden diff HEAD~3    # object-level YAML diffs
    .venv/bin/python -m tests.catalog.golden write          # record today's renders

Digests rather than whole objects keep the file small (the 42 stacks are about 1.6 MB of
objects); ``diff`` rebuilds the objects of any commit from git.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import canonical_json
from controlplane.rendering.catalog_checks import stack_check
from controlplane.rendering.naming import object_id

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
#: The Kubernetes minor the golden renders validate against.
KUBERNETES_VERSION = "1.33"

Stacks = dict[str, dict[str, dict[str, Any]]]


def render_all(catalog_dir: Path | None = None, templates_dir: Path | None = None) -> Stacks:
    """``service/version/plan`` → object id → object, for the whole catalogue."""
    catalog = load_catalog(catalog_dir, templates_dir)
    check = stack_check(KUBERNETES_VERSION)
    stacks: Stacks = {}
    for release in catalog.releases():
        for plan in release.plans:
            key = f"{release.name}/{release.version.version}/{plan.name}"
            stacks[key] = {object_id(o): dict(o) for o in check(release, plan, {})}
    return stacks


def digests(stacks: Stacks) -> dict[str, dict[str, str]]:
    return {
        key: {
            oid: "sha256:" + hashlib.sha256(canonical_json(obj).encode()).hexdigest()
            for oid, obj in objects.items()
        }
        for key, objects in stacks.items()
    }


def recorded() -> dict[str, dict[str, str]]:
    return dict(json.loads(GOLDEN.read_text(encoding="utf-8")))


def write() -> None:
    text = json.dumps(digests(render_all()), indent=1, sort_keys=True) + "\n"
    GOLDEN.write_text(text, encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(ROOT)}")


def changes(
    before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]
) -> Iterator[tuple[str, str, str]]:
    """``(stack, object id, what)`` for every stack or object that is not the same."""
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            yield key, "*", "stack no longer rendered"
            continue
        if key not in before:
            yield key, "*", "new stack"
            continue
        old, new = before[key], after[key]
        for oid in sorted(old.keys() | new.keys()):
            if oid not in new:
                yield key, oid, "removed"
            elif oid not in old:
                yield key, oid, "added"
            elif old[oid] != new[oid]:
                yield key, oid, "changed"


def _catalogue_of(revision: str, into: Path) -> None:
    """The catalog/ and templates/ folders of a git revision, unpacked below ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "catalog", "templates"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def diff(revision: str) -> int:
    """Print object-level YAML diffs between ``revision``'s catalogue and today's."""
    with tempfile.TemporaryDirectory() as tmp:
        _catalogue_of(revision, Path(tmp))
        before = render_all(Path(tmp) / "catalog", Path(tmp) / "templates")
    after = render_all()
    found = 0
    for key, oid, what in changes(digests(before), digests(after)):
        found += 1
        print(f"== {key} {oid}: {what}")
        if what == "changed":
            old = yaml.safe_dump(before[key][oid], sort_keys=True).splitlines()
            new = yaml.safe_dump(after[key][oid], sort_keys=True).splitlines()
            for line in difflib.unified_diff(old, new, revision, "now", lineterm="", n=2):
                print(line)
    print(f"{found} difference(s) between {revision} and the working tree")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["write"]:
        write()
        return 0
    if len(argv) == 2 and argv[0] == "diff":
        return diff(argv[1])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
