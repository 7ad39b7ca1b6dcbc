"""The errors of fleet upgrades, each a :class:`controlplane.errors.ControlPlaneError`.

This module must not know about plans, runs or the database: only what went wrong, for the
user, mapped to problem+json by the one handler of the API.
"""

from __future__ import annotations

from controlplane.errors import Conflict, InvalidInput, NotFound


class FleetPlanInvalid(InvalidInput):
    """The fleet plan request is not valid."""

    title = "Invalid fleet plan"
    code = "fleet_plan_invalid"


class FleetPlanNotFound(NotFound):
    """There is no such fleet plan."""

    title = "Fleet plan not found"
    code = "fleet_plan_not_found"


class FleetRunNotFound(NotFound):
    """There is no such fleet run."""

    title = "Fleet run not found"
    code = "fleet_run_not_found"


class FleetRunConflict(Conflict):
    """This fleet run cannot do that in its current state."""

    title = "Fleet run conflict"
    code = "fleet_run_conflict"
