"""The failure threshold of a run: ``"3"`` failures or ``"10%"`` of the plan's instances.

One rule for the three places that need it: planning validates it, the executor stops a
run on it, and the report shows it.

This module must not know about plans, runs or the database.
"""

from __future__ import annotations

import math

from controlplane.errors import ErrorItem
from controlplane.provisioning.fleet.errors import FleetPlanInvalid


def threshold_limit(threshold: str, total: int) -> int:
    """How many failures stop a run: ``"3"`` → 3, ``"10%"`` of 60 instances → 6 (at least 1)."""
    text = threshold.strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 < percent <= 100:
                raise ValueError(text)
            return max(1, math.ceil(total * percent / 100))
        count = int(text)
        if count < 1:
            raise ValueError(text)
        return count
    except ValueError as exc:
        raise FleetPlanInvalid(
            f"Failure threshold {threshold!r} is neither a count nor a percentage.",
            errors=[ErrorItem("failure_threshold", "expected e.g. 1, 3 or 10%")],
            hint="A count stops the run after that many failures; a percentage is of the "
            "plan's instances.",
        ) from exc
