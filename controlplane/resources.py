"""Where the shipped catalogue and templates are.

In a wheel they live in ``controlplane/_shipped/`` (hatch force-includes them); in a
source checkout or an editable install they are the top-level ``catalog/`` and
``templates/`` folders. Settings may point anywhere else.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = _PACKAGE / "_shipped" / name
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / name


def catalog_dir(override: Path | None = None) -> Path:
    return override if override is not None else _shipped("catalog")


def templates_dir(override: Path | None = None) -> Path:
    return override if override is not None else _shipped("templates")
