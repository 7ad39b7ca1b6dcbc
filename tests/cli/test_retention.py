"""Retention on delete through cityctl against a real API on loopback (issue 18).

``instance delete`` retains (workloads stop, data kept until ``purge_after``), ``instance
restore`` brings it back, ``instance delete --purge`` removes everything now and asks first
naming the instance (without a terminal it refuses unless ``--yes``). Each is audited.

The tests of this module share one control plane and run in order.
"""

from __future__ import annotations

import pytest
import typer.testing

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv

SERVICE, VERSION = "keycloak", "26.0.7"


@pytest.fixture(scope="module")
def admin(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    operator = platform.issue_token(Role.OPERATOR, "retention-operator")
    published = platform.json("catalog", "publish", SERVICE, token=operator)["published"]
    assert {r["outcome"] for r in published} == {"created"}
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    assert platform.run("tenant", "import", str(csv_file), token=operator).exit_code == 0
    created = platform.ok(
        "token", "create", "--name", "gent-admin", "--role", "tenant-admin", "--tenant", "gent",
        token=operator,
    )  # fmt: skip
    return created.stdout.strip()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cityctl ran in a terminal: CliRunner's stdin answers the question."""
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)


def test_delete_retains_then_restore_then_purge(platform: Platform, admin: str) -> None:
    platform.json(
        "instance", "create", "login", "--service", SERVICE, "--version", VERSION,
        "--plan", "small", "--set", "admin_username=gentadmin", "--wait", token=admin,
    )  # fmt: skip
    deleted = platform.run("instance", "delete", "login", "--yes", "--wait", token=admin)
    assert deleted.exit_code == 0, deleted.stderr
    assert "retained until" in deleted.stdout  # the NOTES column
    shown = platform.json("instance", "show", "login", token=admin)
    assert shown["status"]["phase"] == "Retained"
    assert shown["purge_after"]

    refused = platform.run("instance", "update", "login", "--plan", "large", token=admin)
    assert refused.exit_code == 5, refused.stderr
    assert "cityctl instance restore login" in refused.stderr

    restored = platform.json("instance", "restore", "login", "--wait", token=admin)
    assert restored["status"]["phase"] in ("Ready", "Committed")
    assert restored["purge_after"] is None
    again = platform.run("instance", "restore", "login", token=admin)
    assert again.exit_code == 5
    assert "is not retained" in again.stderr

    # Purge: no terminal, no --yes: refused before anything changes.
    unasked = platform.run("instance", "delete", "login", "--purge", token=admin)
    assert unasked.exit_code == 2, (unasked.stdout, unasked.stderr)
    assert "purge gent/login" in unasked.stderr
    purged = platform.run("instance", "delete", "login", "--purge", "--yes", "--wait", token=admin)
    assert purged.exit_code == 0, purged.stderr
    gone = platform.run("instance", "show", "login", token=admin)
    assert gone.exit_code == 4

    actions = [
        e["action"]
        for e in platform.json("audit", "list", token=admin)
        if e["resource"] == "instance:gent/login"
    ]
    for action in ("instance.delete", "instance.restore", "instance.purge"):
        assert action in actions


def test_purge_asks_naming_the_instance(platform: Platform, admin: str, terminal: None) -> None:
    platform.json(
        "instance", "create", "portal", "--service", SERVICE, "--version", VERSION,
        "--plan", "small", "--set", "admin_username=gentadmin", token=admin,
    )  # fmt: skip
    declined = platform.run("instance", "delete", "portal", "--purge", token=admin, input="n\n")
    assert declined.exit_code == 1, (declined.stdout, declined.stderr)
    assert "gent/portal" in declined.stdout + declined.stderr
    assert platform.json("instance", "show", "portal", token=admin)["deletion_requested"] is False
    accepted = platform.run(
        "instance", "delete", "portal", "--purge", "-o", "json", token=admin, input="y\n"
    )
    assert accepted.exit_code == 0, accepted.stderr
