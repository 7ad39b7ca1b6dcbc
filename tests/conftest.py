"""Test-suite wide options and markers.

Sub-packages mirror ``controlplane/`` and keep their own fixtures; factories live in
``tests/factories.py``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--with-e2e",
        action="store_true",
        default=False,
        help="also run the e2e suite against the real cluster in KUBECONFIG",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test on the real cluster carries the marker, so `-m cluster` selects the tier.
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
    if config.getoption("--with-e2e"):
        return
    skip = pytest.mark.skip(
        reason="e2e needs a real cluster: run with --with-e2e and KUBECONFIG set"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
