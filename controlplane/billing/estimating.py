"""The database side of an estimate: the reference month's inputs for ``estimates.py``.

:mod:`controlplane.billing.estimates` computes what one more plan would cost from plain
values; this module loads them (:func:`controlplane.billing.inputs.load_inputs`).

This module must not know about closing periods, prices or pools as finance edits them,
FastAPI or Typer.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from controlplane.billing.estimates import Estimate, estimate_plan_cost
from controlplane.billing.inputs import load_inputs, tenant_info, trial_grace
from controlplane.billing.models import (
    plan_requests,
)
from controlplane.billing.periods import Period
from controlplane.tenants.models import Tenant


def estimate(
    session: Session, *, tenant: Tenant, service: str, plan: str, now: datetime
) -> Estimate:
    """What one more ``service``/``plan`` would cost ``tenant`` per month.

    The reference month is the last complete one: its users and pools give the shares.
    """
    reference = Period.containing(now).previous
    inputs = load_inputs(session, reference, now)
    requests = plan_requests(inputs.catalogue.plan(service, plan))
    return estimate_plan_cost(
        tenant=tenant_info(tenant),
        service=service,
        plan=plan,
        reference_period=reference,
        tenants=inputs.tenants,
        events=inputs.events,
        prices=inputs.prices,
        pools=inputs.pools,
        now=now,
        active_tenants=inputs.active,
        cpu=requests[0],
        memory=requests[1],
        trial_grace=trial_grace(),
    )
