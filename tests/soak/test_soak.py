"""The 1-minute soak (CI): API + 2 worker processes on real PostgreSQL, the real cluster
behind the fault proxy with ≈10 % faults, random worker kills; every invariant of
tests/soak/invariants.py must hold.

The only long test of the suite (about 2 to 3 minutes with set-up, convergence and the
namespace controller). Longer runs: ``make soak SOAK_MINUTES=5``.
"""

from __future__ import annotations

import os

import pytest

from tests.cluster.fixtures import Cluster
from tests.soak.runner import SoakConfig, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("soak")]


def test_one_minute_soak_converges_without_violations(cluster: Cluster) -> None:
    if os.environ.get("CONTROLPLANE_TEST_POSTGRES", "on") == "off":
        pytest.skip("CONTROLPLANE_TEST_POSTGRES=off")
    minutes = float(os.environ.get("SOAK_TEST_MINUTES", "1"))
    config = SoakConfig(
        minutes=minutes,
        seed=int(os.environ.get("SOAK_SEED", "0")),
        kubeconfig=cluster.kubeconfig,
    )
    report = run_soak(config)
    assert sum(report.operations.values()) > 0, report.render()
    assert report.kills > 0, report.render()
    assert report.faults_fired > 0, report.render()
    assert report.ok, report.render()
