"""The 1-minute soak (CI): API + 2 worker processes on real PostgreSQL, the emulator with
≈10 % faults, random worker kills; every invariant of tests/soak/invariants.py must hold.

The only long test of the suite (about 1.5 minutes with set-up and convergence). Longer
runs: ``make soak SOAK_MINUTES=5``.
"""

from __future__ import annotations

import os

import pytest

from tests.soak.runner import SoakConfig, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("soak")]


def test_one_minute_soak_converges_without_violations() -> None:
    if os.environ.get("CONTROLPLANE_TEST_POSTGRES", "on") == "off":
        pytest.skip("CONTROLPLANE_TEST_POSTGRES=off")
    minutes = float(os.environ.get("SOAK_TEST_MINUTES", "1"))
    report = run_soak(SoakConfig(minutes=minutes, seed=int(os.environ.get("SOAK_SEED", "0"))))
    assert sum(report.operations.values()) > 0, report.render()
    assert report.kills > 0, report.render()
    assert report.faults_fired > 0, report.render()
    assert report.ok, report.render()
