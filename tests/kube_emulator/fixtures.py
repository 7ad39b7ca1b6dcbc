"""The ``kube_emulator`` pytest fixture.

Import it into a test package's conftest (or test module) with
``from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401``.
Each test gets its own emulator on a free loopback port, stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube_emulator import KubeEmulator


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator(seed=0) as emulator:
        yield emulator
