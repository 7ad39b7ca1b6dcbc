"""Fleet upgrades: move many instances of one service to a new version, safely.

An operator *plans* an upgrade (:mod:`.planning`: which instances, in which waves, and what
would change for each), *starts* a run of the plan and may pause, resume or cancel it
(:mod:`.actions`); the worker's :class:`FleetExecutor` (:mod:`.executor`) advances every
active run, level-based, inside each tenant's maintenance window (:mod:`.windows`), stops a
run when failures reach its threshold (:mod:`.thresholds`) and writes its report
(:mod:`.reports`). Plans and runs are tables (:mod:`.models`), read through :mod:`.queries`;
errors are in :mod:`.errors`. docs/fleet.md describes the whole.

Dependency direction inside the package: ``errors`` and ``models`` at the bottom;
``windows``, ``thresholds`` and ``queries`` above them, ``reports`` above ``thresholds``;
``planning`` and ``executor`` above those; ``actions`` (which advances a cancelled run once)
on top.

This package must not know about HTTP, FastAPI, Typer or how the worker is scheduled.
"""

from __future__ import annotations

from controlplane.provisioning.fleet.actions import cancel_run, pause_run, resume_run, start_run
from controlplane.provisioning.fleet.errors import (
    FleetPlanInvalid,
    FleetPlanNotFound,
    FleetRunConflict,
    FleetRunNotFound,
)
from controlplane.provisioning.fleet.executor import SETTLED, FleetExecutor, tick
from controlplane.provisioning.fleet.models import (
    ACTIVE_RUN_STATUSES,
    FAILURE_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    FleetPlan,
    FleetPlanItem,
    FleetRun,
    FleetRunItem,
    ItemState,
    RunStatus,
)
from controlplane.provisioning.fleet.planning import (
    ObjectChanges,
    PlanRequest,
    RendererFor,
    create_plan,
    diff_digests,
    preview_instance,
    upgrade_exclusion,
)
from controlplane.provisioning.fleet.queries import (
    get_plan,
    get_run,
    list_newest,
    plan_item,
    plan_items,
    run_items,
)
from controlplane.provisioning.fleet.reports import counts
from controlplane.provisioning.fleet.thresholds import threshold_limit
from controlplane.provisioning.fleet.windows import BRUSSELS, DAYS, next_opening, window_open

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "BRUSSELS",
    "DAYS",
    "FAILURE_STATES",
    "FINAL_STATES",
    "IN_FLIGHT_STATES",
    "SETTLED",
    "FleetExecutor",
    "FleetPlan",
    "FleetPlanInvalid",
    "FleetPlanItem",
    "FleetPlanNotFound",
    "FleetRun",
    "FleetRunConflict",
    "FleetRunItem",
    "FleetRunNotFound",
    "ItemState",
    "ObjectChanges",
    "PlanRequest",
    "RendererFor",
    "RunStatus",
    "cancel_run",
    "counts",
    "create_plan",
    "diff_digests",
    "get_plan",
    "get_run",
    "list_newest",
    "next_opening",
    "pause_run",
    "plan_item",
    "plan_items",
    "preview_instance",
    "resume_run",
    "run_items",
    "start_run",
    "threshold_limit",
    "tick",
    "upgrade_exclusion",
    "window_open",
]
