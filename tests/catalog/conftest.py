"""Fixtures of the catalogue tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.catalog.fixture_catalog import FixtureCatalog, copy_fixture


@pytest.fixture
def fixture_catalog(tmp_path: Path) -> FixtureCatalog:
    return copy_fixture(tmp_path)
