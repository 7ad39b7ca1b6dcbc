"""Readiness verdicts from live workload status (pure; no cluster needed)."""

from __future__ import annotations

from typing import Any

from controlplane.kube.readiness import evaluate


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
