"""The soak's rules on synthetic snapshots: a consistent history passes, and each kind of
damage is reported under its rule (so a soak that passes means something)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from tests.soak.invariants import (
    ClusterObject,
    InstanceState,
    RevisionState,
    Snapshot,
    UsageState,
    check,
    expected_usage,
    without_retention,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
LIVE, GONE = "11111111-live", "22222222-gone"
CM, NS = "v1/ConfigMap/settings", "v1/Namespace/gent-forms"


def _instance(**kw: object) -> InstanceState:
    fields: dict[str, object] = dict(
        id=LIVE, tenant="gent", name="forms", namespace="gent-forms", version="2.0.0",
        plan="large", parameters={"hostname": "a.gent.be"}, generation=3,
        observed_generation=3, phase="Ready", deletion_requested=False, deleted=False,
    )  # fmt: skip
    fields.update(kw)
    return InstanceState(**fields)  # type: ignore[arg-type]


def good() -> Snapshot:
    """A live instance (created small, moved to large, upgraded) and a deleted one."""
    live = _instance()
    gone = _instance(
        id=GONE, name="old", namespace="gent-old", version="1.0.0", plan="small", parameters={},
        generation=2, observed_generation=2, phase="Deleted", deletion_requested=True,
        deleted=True,
    )  # fmt: skip
    inventory = {NS: "sha256:ns", CM: "sha256:cm2"}
    revisions = [
        RevisionState(LIVE, 1, "1.0.0", "small", {}, {NS: "sha256:ns", CM: "sha256:cm1"}),
        RevisionState(LIVE, 2, "1.0.0", "large", {"hostname": "a.gent.be"}, inventory),
        RevisionState(LIVE, 3, "2.0.0", "large", {"hostname": "a.gent.be"}, inventory),
        RevisionState(GONE, 1, "1.0.0", "small", {}, {"v1/ConfigMap/x": "sha256:x"}),
    ]
    usage = [
        UsageState(LIVE, "started", "small", T0),
        UsageState(LIVE, "plan_changed", "large", T0 + timedelta(hours=1)),
        UsageState(GONE, "started", "small", T0),
        UsageState(GONE, "stopped", "small", T0 + timedelta(hours=2)),
    ]
    objects = [
        ClusterObject(NS, None, LIVE, "sha256:ns"),
        ClusterObject(CM, "gent-forms", LIVE, "sha256:cm2"),
        ClusterObject("v1/ConfigMap/kube-root-ca.crt", "gent-forms", None, None),
    ]
    return Snapshot([live, gone], revisions, usage, objects, {"gent-forms", "default"})


def rules(snapshot: Snapshot) -> list[str]:
    return sorted({v.rule for v in check(snapshot)})


def test_a_consistent_history_passes() -> None:
    assert check(good()) == []


def test_unconverged_generation_and_phase_are_reported() -> None:
    snap = good()
    snap.instances[0] = dataclasses.replace(snap.instances[0], observed_generation=2)
    snap.instances[1] = dataclasses.replace(snap.instances[1], phase="Deleting")
    violations = check(snap)
    assert {v.rule for v in violations} == {"converged"}
    assert any("observed generation 2 != generation 3" in v.detail for v in violations)
    assert any("phase Deleting, expected Deleted" in v.detail for v in violations)


def test_objects_outside_the_inventory_or_of_deleted_instances_are_orphans() -> None:
    snap = good()
    snap.objects += [
        ClusterObject("v1/ConfigMap/legacy", "gent-forms", LIVE, "sha256:l"),
        ClusterObject("v1/ConfigMap/x", "gent-old", GONE, "sha256:x"),
        ClusterObject("v1/Secret/stray", "elsewhere", "99999999-unknown", None),
    ]
    details = [v.detail for v in check(snap) if v.rule == "orphan"]
    assert len(details) == 3
    assert any("v1/ConfigMap/legacy is not in the inventory of revision 3" in d for d in details)


def test_a_deleted_instances_namespace_must_be_gone_unless_the_name_was_reused() -> None:
    snap = good()
    snap.namespaces.add("gent-old")
    assert rules(snap) == ["orphan"]
    snap.instances.append(_instance(id="33333333-new", name="old", namespace="gent-old"))
    assert not [v for v in check(snap) if "still exists" in v.detail]


def test_status_must_match_the_cluster_and_the_desired_inputs() -> None:
    snap = good()
    snap.objects = [o for o in snap.objects if o.object_id != CM]
    assert any("v1/ConfigMap/settings is not in the cluster" in v.detail for v in check(snap))

    snap = good()
    snap.objects[1] = dataclasses.replace(snap.objects[1], digest="sha256:edited")
    assert rules(snap) == ["status"]

    snap = good()
    snap.instances[0] = dataclasses.replace(snap.instances[0], plan="small")
    assert "status" in rules(snap)


def test_usage_events_follow_the_applied_revisions() -> None:
    snap = good()
    # A started event with the plan that was desired, not the one applied (the race the
    # soak found in the reconciler): the billing truth would be wrong.
    snap.usage[0] = dataclasses.replace(snap.usage[0], plan="large")
    assert rules(snap) == ["usage"]

    snap = good()
    snap.usage.append(UsageState(LIVE, "stopped", "large", T0 + timedelta(hours=3)))
    assert rules(snap) == ["usage"]

    snap = good()
    snap.usage = [e for e in snap.usage if not (e.instance_id == GONE and e.kind == "stopped")]
    assert rules(snap) == ["usage"]


def test_usage_order_is_by_time() -> None:
    snap = good()
    snap.usage[1] = dataclasses.replace(snap.usage[1], at=T0 - timedelta(hours=1))
    assert rules(snap) == ["usage"]


def test_an_instance_deleted_before_it_ran_has_no_events() -> None:
    never = _instance(deleted=True, deletion_requested=True, phase="Deleted")
    assert expected_usage(never, []) == []
    rollback = [
        RevisionState(LIVE, 1, "1", "small", {}, {}),
        RevisionState(LIVE, 2, "1", "small", {}, {}, applied=False),
        RevisionState(LIVE, 3, "1", "large", {}, {}),
        RevisionState(LIVE, 4, "1", "small", {}, {}),
    ]
    assert expected_usage(_instance(), rollback) == [
        ("started", "small"),
        ("plan_changed", "large"),
        ("plan_changed", "small"),
    ]


# -- retention (issue 18): retained, restored and purged instances ---------------------------

KEPT = "33333333-kept"
PVC, SECRET = "v1/PersistentVolumeClaim/data", "v1/Secret/db"
DEPLOY = "apps/v1/Deployment/web"
DAYS_30 = timedelta(days=30)


def retained() -> Snapshot:
    """``good()`` plus an instance deleted without purge: its namespace, claim and Secret
    kept, its Deployment pruned, and the claim the runner saw during the run unchanged."""
    snap = good()
    snap.instances.append(
        _instance(
            id=KEPT, name="kept", namespace="gent-kept", plan="small", parameters={},
            generation=2, observed_generation=2, phase="Retained", purge_after=T0 + DAYS_30,
        )
    )  # fmt: skip
    inventory = {"v1/Namespace/gent-kept": "sha256:n", PVC: "sha256:p", SECRET: "sha256:s"}
    snap.revisions.append(
        RevisionState(KEPT, 1, "2.0.0", "small", {}, {**inventory, DEPLOY: "sha256:d"})
    )
    snap.usage += [
        UsageState(KEPT, "started", "small", T0),
        UsageState(KEPT, "retained", "small", T0 + timedelta(hours=1)),
    ]
    snap.objects += [
        ClusterObject("v1/Namespace/gent-kept", None, KEPT, "sha256:n"),
        ClusterObject(PVC, "gent-kept", KEPT, "sha256:p", uid="uid-1"),
        ClusterObject(SECRET, "gent-kept", KEPT, "sha256:s"),
    ]
    snap.namespaces.add("gent-kept")
    snap.seen_claims = {KEPT: {PVC: "uid-1"}}
    return snap


def test_a_retained_instance_with_its_data_passes() -> None:
    assert check(retained()) == []


def test_a_retained_instance_keeps_its_namespace_claims_and_purge_date() -> None:
    snap = retained()
    snap.namespaces.discard("gent-kept")
    assert [v.detail for v in check(snap)] == ["retained, but namespace gent-kept is gone"]

    snap = retained()
    snap.objects = [o for o in snap.objects if o.object_id != PVC]
    details = [v.detail for v in check(snap) if v.rule == "retained"]
    assert details == [f"retained, but claim {PVC} is not in the cluster"]

    snap = retained()
    snap.instances[-1] = dataclasses.replace(snap.instances[-1], purge_after=None)
    assert "retained" in rules(snap)


def test_a_converged_retained_instance_has_no_workloads_left() -> None:
    snap = retained()
    snap.objects.append(ClusterObject(DEPLOY, "gent-kept", KEPT, "sha256:d"))
    assert rules(snap) == ["retained"]
    assert any(f"{DEPLOY} is still in the cluster" in v.detail for v in check(snap))


def test_a_claim_lost_or_replaced_before_purge_is_reported() -> None:
    snap = retained()
    snap.objects = [dataclasses.replace(o, uid="uid-2") if o.object_id == PVC else o
                    for o in snap.objects]  # fmt: skip
    assert rules(snap) == ["claims"]
    assert "was replaced: uid uid-2, first seen uid-1" in check(snap)[0].detail

    # Restored: Ready again, and the claim must still be the one seen before.
    snap = retained()
    snap.instances[-1] = dataclasses.replace(
        snap.instances[-1], purge_after=None, phase="Ready", generation=3, observed_generation=3
    )
    snap.revisions.append(
        RevisionState(KEPT, 2, "2.0.0", "small", {}, dict(snap.revisions[-1].inventory))
    )
    snap.usage.append(UsageState(KEPT, "plan_changed", "small", T0 + timedelta(hours=2)))
    snap.objects.append(ClusterObject(DEPLOY, "gent-kept", KEPT, "sha256:d"))
    snap.restored = {KEPT}
    assert check(snap) == []
    snap.objects = [o for o in snap.objects if o.object_id != PVC]
    lost = [v.detail for v in check(snap) if v.rule == "claims"]
    assert lost == [f"restored, never purged, but claim {PVC} (uid uid-1) is gone"]


def test_a_purged_instance_may_lose_its_claims_but_not_keep_its_namespace() -> None:
    snap = retained()
    snap.instances[-1] = dataclasses.replace(
        snap.instances[-1], phase="Deleted", deletion_requested=True, deleted=True
    )
    snap.usage.append(UsageState(KEPT, "stopped", "small", T0 + timedelta(hours=2)))
    snap.objects = [o for o in snap.objects if o.instance_id != KEPT]
    snap.namespaces.discard("gent-kept")
    assert check(snap) == []
    snap.namespaces.add("gent-kept")
    assert rules(snap) == ["orphan"]


def test_retention_usage_events_are_set_aside_but_must_close_a_retention() -> None:
    snap = retained()
    snap.usage = [e for e in snap.usage if e.kind != "retained"]
    assert rules(snap) == ["usage"]
    assert "the last usage event is not" in check(snap)[0].detail
    # A restore that applied a pending plan change keeps its plan_changed.
    events = [("started", "small"), ("retained", "small"), ("plan_changed", "large")]
    assert without_retention(events) == [("started", "small"), ("plan_changed", "large")]


def test_a_retained_instance_whose_retain_failed_is_not_converged() -> None:
    # A target error keeps the phase Retained and records the generation (retried with
    # backoff): only the Applied condition tells that the workloads may still run.
    snap = retained()
    snap.instances[-1] = dataclasses.replace(snap.instances[-1], applied=False)
    snap.objects.append(ClusterObject(DEPLOY, "gent-kept", KEPT, "sha256:d"))
    snap.usage = [e for e in snap.usage if e.kind != "retained"]
    assert [v.detail for v in check(snap)] == ["Retained, but the retain did not apply"]
