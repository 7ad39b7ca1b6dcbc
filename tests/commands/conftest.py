"""Fixtures of the command tests: a CliRunner and a copy of the catalogue fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.catalog.fixture_catalog import FixtureCatalog, copy_fixture


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # The commands read CONTROLPLANE_* settings; the tests start from none of them.
    for name in (
        "CONTROLPLANE_SERVER_SECRET",
        "CONTROLPLANE_CATALOG_DIR",
        "CONTROLPLANE_TEMPLATES_DIR",
        "CONTROLPLANE_KUBERNETES_VERSION",
    ):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def fixture_catalog(tmp_path: Path) -> FixtureCatalog:
    return copy_fixture(tmp_path)
