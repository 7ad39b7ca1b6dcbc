"""Readiness verdicts from live workload status (pure; no cluster needed)."""

from __future__ import annotations

from typing import Any

from controlplane.kube.readiness import evaluate, judged


def _deployment(generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": 3}, "status": status}


def test_a_rolled_out_deployment_is_ready() -> None:
    live = _deployment(observedGeneration=1, updatedReplicas=3, availableReplicas=3)

    assert evaluate("d", "Deployment", live).ready


def test_an_unobserved_generation_is_not_ready_even_if_replicas_look_fine() -> None:
    live = _deployment(2, observedGeneration=1, updatedReplicas=3, availableReplicas=3)

    verdict = evaluate("d", "Deployment", live)

    assert not verdict.ready
    assert "generation 2, observed 1" in verdict.message


def test_a_partial_rollout_says_how_far_it_is() -> None:
    live = _deployment(observedGeneration=1, updatedReplicas=1, availableReplicas=1)

    verdict = evaluate("d", "Deployment", live)

    assert verdict.message == "rollout in progress: 1 of 3 replicas updated"
    assert not verdict.failed


def test_a_progress_deadline_is_a_failure() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    live = _deployment(observedGeneration=1, conditions=[condition])

    verdict = evaluate("d", "Deployment", live)

    assert verdict.failed
    assert "rollout failed" in verdict.message


def test_statefulset_counts_ready_replicas() -> None:
    live = _deployment(observedGeneration=1, updatedReplicas=3, readyReplicas=2)

    assert evaluate("s", "StatefulSet", live).message == "2 of 3 replicas ready"


def test_jobs_are_ready_when_completed_and_failed_when_failed() -> None:
    running = {"spec": {"completions": 2}, "status": {"succeeded": 1}}
    done = {"spec": {"completions": 2}, "status": {"succeeded": 2}}
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "X"}]}}

    assert evaluate("j", "Job", running).message == "job running: 1 of 2 completions succeeded"
    assert evaluate("j", "Job", done).ready
    assert evaluate("j", "Job", failed).failed


def test_a_missing_object_is_not_ready() -> None:
    assert not evaluate("d", "Deployment", None).ready


CLUSTER = "postgresql.cnpg.io/v1/Cluster/postgres"


def _cluster(status: dict[str, Any] | None, instances: int = 1) -> dict[str, Any]:
    live: dict[str, Any] = {"spec": {"instances": instances}}
    if status is not None:
        live["status"] = status
    return live


def test_a_cloudnative_pg_database_counts_only_what_its_operator_reports() -> None:
    silent = evaluate(CLUSTER, "Cluster", _cluster(None))
    assert not silent.ready
    assert "operator has not reported" in silent.message
    assert not silent.failed  # an operator may still be starting: waiting can help
    setting_up = evaluate(
        CLUSTER,
        "Cluster",
        _cluster(
            {
                "phase": "Setting up primary",
                "readyInstances": 0,
                "conditions": [{"type": "Ready", "status": "False"}],
            }
        ),
    )
    assert not setting_up.ready
    assert "Setting up primary" in setting_up.message
    assert "0 of 1" in setting_up.message
    healthy = {
        "phase": "Cluster in healthy state",
        "readyInstances": 2,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert evaluate(CLUSTER, "Cluster", _cluster(healthy, instances=2)).ready
    # Ready condition but fewer ready instances than asked: not ready.
    assert not evaluate(CLUSTER, "Cluster", _cluster(healthy, instances=3)).ready


def test_only_the_cloudnative_pg_cluster_kind_is_judged() -> None:
    assert judged(CLUSTER)
    assert judged("apps/v1/Deployment/web")
    assert not judged("example.com/v1/Cluster/postgres")
    assert not judged("v1/ConfigMap/settings")
    # Another API's Cluster exists, and that is all the platform can say of it.
    assert evaluate("example.com/v1/Cluster/x", "Cluster", {"spec": {}}).ready
