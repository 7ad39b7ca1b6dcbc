"""Usage events follow what was applied, even when desired state moves during a reconcile."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from controlplane.provisioning.models import Revision, Target, UsageEvent
from controlplane.provisioning.targets import StackTarget
from controlplane.provisioning.targets.building import TargetRegistry, build_target
from tests.provisioning.conftest import Platform, make_worker


class _ChangesPlanDuringApply:
    """A target that, during one apply, lets the tenant change the plan (as a racing API call)."""

    def __init__(self, inner: StackTarget, on_apply: Any) -> None:
        self._inner = inner
        self._on_apply = on_apply

    def apply(self, stack: Any, *, only: set[str] | None = None) -> Any:
        if self._on_apply is not None:
            callback, self._on_apply = self._on_apply, None
            callback()
        return self._inner.apply(stack, only=only)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_plan_change_racing_a_reconcile_bills_the_applied_plan(
    gitops_platform: Platform,
) -> None:
    p = gitops_platform
    iid = p.create(p.tenant("gent", "44021"), "forms", plan="small")

    def build(row: Target) -> StackTarget:
        inner = build_target(row)
        return _ChangesPlanDuringApply(inner, lambda: p.change(iid, plan="large"))  # type: ignore[return-value]

    worker = make_worker(p, registry=TargetRegistry(factory=build))
    worker.run_until_idle()

    with Session(p.engine) as session:
        revisions = session.exec(select(Revision).order_by(Revision.number)).all()
        events = session.exec(select(UsageEvent).order_by(UsageEvent.at)).all()
    assert [r.plan for r in revisions] == ["small", "large"]
    # The first revision applied "small" although the tenant already wanted "large" then.
    assert [(e.kind, e.plan) for e in events] == [("started", "small"), ("plan_changed", "large")]
