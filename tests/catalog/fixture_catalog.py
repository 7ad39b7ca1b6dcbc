"""A small valid catalogue (tests/catalog/fixture) that a test copies and breaks one way.

Each bad-input test copies the fixture into ``tmp_path``, changes one thing through
:class:`FixtureCatalog` and asserts the message and location of exactly that mistake.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml_rs

FIXTURE = Path(__file__).parent / "fixture"


@dataclass
class FixtureCatalog:
    root: Path

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    def service(self, name: str = "demo") -> dict[str, Any]:
        loaded = yaml_rs.loads(
            (self.catalog_dir / f"{name}.yaml").read_text(), parse_datetime=False
        )
        assert isinstance(loaded, dict)
        return loaded

    def edit(self, change: Callable[[dict[str, Any]], object], name: str = "demo") -> None:
        """Load ``<name>.yaml``, let ``change`` mutate it, write it back."""
        data = self.service(name)
        change(data)
        self.write(name, data)

    def write(self, file: str, data: dict[str, Any]) -> None:
        (self.catalog_dir / f"{file}.yaml").write_text(yaml_rs.dumps(data))

    def declare_data(self, *places: tuple[str, str]) -> None:
        """Replace the ``data`` declaration with these (name, kind) entries, for a test whose
        templates keep data elsewhere than the fixture's volume ``data``."""

        def change(d: dict[str, Any]) -> None:
            d["data"] = [{"name": n, "kind": k, "holds": "test data"} for n, k in places]

        self.edit(change)

    def template(self, relative: str) -> Path:
        return self.templates_dir / relative

    def replace_in_template(self, relative: str, old: str, new: str) -> int:
        """Replace ``old`` (which must be there) and return the 1-based line it was on."""
        path = self.template(relative)
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        line = text[: text.index(old)].count("\n") + 1
        path.write_text(text.replace(old, new, 1))
        return line


def copy_fixture(tmp_path: Path) -> FixtureCatalog:
    root = tmp_path / "fixture"
    shutil.copytree(FIXTURE, root)
    return FixtureCatalog(root)
