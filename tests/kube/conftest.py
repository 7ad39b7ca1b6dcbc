"""Fixtures of the Kubernetes port tests: the emulator and a typical stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.kube import KubeTarget, RetryPolicy
from tests.kube_emulator import KubeEmulator
from tests.kube_emulator.fixtures import kube_emulator  # noqa: F401

#: Tiny waits so that retry tests stay fast; the jitter is seeded so runs repeat.
FAST_RETRY = RetryPolicy(
    attempts=8, base_delay=0.001, max_delay=0.01, deadline=10.0, request_timeout=5.0,
    poll_interval=0.01, seed=1,
)  # fmt: skip


@pytest.fixture
def target(kube_emulator: KubeEmulator) -> Iterator[KubeTarget]:  # noqa: F811
    kube = KubeTarget(kube_emulator.api_client(), retry=FAST_RETRY)
    yield kube
    kube.close()
