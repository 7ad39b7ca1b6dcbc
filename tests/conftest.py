"""Test-suite wide options and markers.

Sub-packages mirror ``controlplane/`` and keep their own fixtures; factories live in
``tests/factories.py``.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test on the real cluster carries the marker, so `-m cluster` selects the tier.
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
