"""What a run reports: counts per item state, and the report written when a run stops,
is cancelled or finishes (counts, the failed instances, the threshold, the waves).

This module must not know about how runs are advanced, nor about HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controlplane.provisioning.fleet.models import (
    FAILURE_STATES,
    FleetPlan,
    FleetRun,
    FleetRunItem,
    ItemState,
)
from controlplane.provisioning.fleet.thresholds import threshold_limit


def counts(items: Sequence[FleetRunItem]) -> dict[str, int]:
    found = Counter(str(i.state) for i in items)
    return {str(state): found.get(str(state), 0) for state in ItemState}


def run_report(
    run: FleetRun, plan: FleetPlan, items: Sequence[FleetRunItem], now: datetime
) -> dict[str, Any]:
    failures = [
        {
            "tenant": i.tenant,
            "instance": i.instance,
            "wave": i.wave,
            "state": str(i.state),
            "message": i.message,
        }
        for i in items
        if i.state in FAILURE_STATES
    ]
    total = len(items)
    return {
        "status": str(run.status),
        "at": now.isoformat(),
        "reason": run.stop_reason,
        "instances": total,
        "counts": counts(items),
        "failures": failures,
        "threshold": plan.failure_threshold,
        "threshold_failures": threshold_limit(plan.failure_threshold, total),
        "waves": (max(i.wave for i in items) + 1) if items else 0,
        "wave": run.wave,
    }
