"""Honest phases through cityctl: a GitOps target that cannot observe says Committed.

A real API and worker on loopback (``tests/cli/conftest.py``). The embedded GitOps target
writes files and nothing observes a cluster, so ``--wait`` waits for Committed and says so;
no message shows the server's folder. ``--observe-kubeconfig`` is checked like a kubernetes
target's kubeconfig, and a target with it settles at Ready (from observation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "honest-phases")
    platform.ok("catalog", "publish", token=token)
    csv_file = municipalities_csv(tmp_path_factory.mktemp("csv"), ("Gent",))
    platform.ok("tenant", "import", str(csv_file), token=token)
    return token


def test_wait_settles_at_committed_on_a_gitops_target_that_does_not_observe(
    platform: Platform, operator: str
) -> None:
    created = platform.run(
        "instance", "create", "login", "--tenant", "gent", "--service", "keycloak",
        "--plan", "small", "--wait", "--timeout", "60", "-o", "json", token=operator,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert "Waiting for Committed (the target" in created.stderr
    assert "does not observe the cluster" in created.stderr
    assert "login is Committed." in created.stderr
    instance = json.loads(created.stdout)
    assert (instance["settles_at"], instance["status"]["phase"]) == ("Committed", "Committed")
    ready = {c["type"]: c for c in instance["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert "Committed to the GitOps repository as gent/login (sha256:" in ready["message"]
    assert "cannot tell whether it runs" in ready["message"]
    shown = platform.ok("instance", "show", "login", "--tenant", "gent", "-o", "json",
                        token=operator).stdout  # fmt: skip
    assert str(platform.data_dir.resolve()) not in shown
    assert str(platform.data_dir) not in shown


def test_an_observe_kubeconfig_must_be_a_kubeconfig_on_the_server(
    platform: Platform, operator: str, tmp_path: Path
) -> None:
    missing = platform.run(
        "target", "create", "gitops-seen", "--kind", "gitops", "--path", "seen",
        "--observe-kubeconfig", str(tmp_path / "nope.yaml"), token=operator,
    )  # fmt: skip
    assert missing.exit_code != 0
    assert "no kubeconfig file" in missing.stderr
    assert "--observe-kubeconfig" in missing.stderr

    wrong_kind = platform.run(
        "target", "create", "k8s-seen", "--kind", "kubernetes", "--in-cluster",
        "--observe-kubeconfig", str(tmp_path / "nope.yaml"), token=operator,
    )  # fmt: skip
    assert wrong_kind.exit_code != 0
    assert "for gitops targets" in wrong_kind.stderr


def test_an_observing_gitops_target_settles_at_ready(
    platform: Platform, operator: str, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    target = platform.json(
        "target", "create", "gitops-seen", "--kind", "gitops", "--path", "seen",
        "--observe-kubeconfig", str(kubeconfig), "--observe-context", "c", token=operator,
    )  # fmt: skip
    assert target["config"]["observe_kubeconfig"] == str(kubeconfig)
    platform.ok("target", "grant", "gitops-seen", "gent", token=operator)
    created = platform.json(
        "instance", "create", "seen", "--tenant", "gent", "--service", "keycloak",
        "--plan", "small", "--target", "gitops-seen", token=operator,
    )  # fmt: skip
    assert created["settles_at"] == "Ready"
