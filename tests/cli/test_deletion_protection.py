"""Deletion protection through cityctl against a real API on loopback (issue 18).

A protected instance (``instance create --protect``, ``instance protect``, or created on a
plan that declares ``deletion_protection``) is not deleted: ``instance delete`` is refused
(exit 5) before anything changes, naming the command that lifts it. ``instance unprotect``
asks first, and is audited as its own step.

The tests of this module share one control plane and run in order.
"""

from __future__ import annotations

import pytest
import typer.testing

from controlplane.auth.models import Role
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import PublishOutcome, find_version, publish_release
from controlplane.db.sessions import open_session
from tests.cli.conftest import Platform, municipalities_csv

SERVICE, VERSION = "keycloak", "26.0.7"
ADMIN_USER = "admin_username=gentadmin"


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "protection-operator")
    published = platform.json("catalog", "publish", SERVICE, token=token)["published"]
    assert {r["outcome"] for r in published} == {"created"}
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    assert platform.run("tenant", "import", str(csv_file), token=token).exit_code == 0
    return token


def _token(platform: Platform, operator: str, role: str, name: str) -> str:
    created = platform.ok(
        "token", "create", "--name", name, "--role", role, "--tenant", "gent", token=operator
    )
    return created.stdout.strip()


@pytest.fixture(scope="module")
def admin(platform: Platform, operator: str) -> str:
    return _token(platform, operator, "tenant-admin", "gent-admin")


@pytest.fixture(scope="module")
def viewer(platform: Platform, operator: str) -> str:
    return _token(platform, operator, "tenant-viewer", "gent-viewer")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cityctl ran in a terminal: CliRunner's stdin answers the question."""
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)


def _create(platform: Platform, token: str, name: str, *extra: str) -> dict[str, object]:
    created: dict[str, object] = platform.json(
        "instance", "create", name, "--service", SERVICE, "--version", VERSION,
        "--set", ADMIN_USER, *extra, token=token,
    )  # fmt: skip
    return created


def _show(platform: Platform, token: str, name: str) -> dict[str, object]:
    shown: dict[str, object] = platform.json("instance", "show", name, token=token)
    return shown


def test_create_protect_then_delete_is_refused_and_changes_nothing(
    platform: Platform, admin: str
) -> None:
    created = _create(platform, admin, "login", "--plan", "small", "--protect")
    assert created["deletion_protection"] is True
    before = _show(platform, admin, "login")
    assert before["deletion_protection"] is True
    assert "deletion protected" in platform.ok("instance", "list", token=admin).stdout

    refused = platform.run("instance", "delete", "login", "--yes", token=admin)
    assert refused.exit_code == 5, (refused.stdout, refused.stderr)
    assert "'login' is protected against deletion" in refused.stderr
    assert "cityctl instance unprotect login" in refused.stderr
    # Without --yes it does not ask a question whose answer cannot matter: same refusal.
    unasked = platform.run("instance", "delete", "login", token=admin)
    assert unasked.exit_code == 5, (unasked.stdout, unasked.stderr)

    after = _show(platform, admin, "login")
    assert (after["generation"], after["deletion_requested"], after["deletion_protection"]) == (
        before["generation"],
        False,
        True,
    )


def test_viewer_can_neither_protect_nor_unprotect(
    platform: Platform, admin: str, viewer: str
) -> None:
    for verb in (["protect"], ["unprotect", "--yes"]):
        refused = platform.run("instance", *verb, "login", token=viewer)
        assert refused.exit_code == 3, (verb, refused.stdout, refused.stderr)
    assert _show(platform, admin, "login")["deletion_protection"] is True


def test_unprotect_asks_naming_the_instance_and_is_audited(
    platform: Platform, admin: str, terminal: None
) -> None:
    declined = platform.run("instance", "unprotect", "login", token=admin, input="n\n")
    assert declined.exit_code == 1, (declined.stdout, declined.stderr)
    assert "gent/login" in declined.stdout + declined.stderr
    assert _show(platform, admin, "login")["deletion_protection"] is True

    lifted = platform.run("instance", "unprotect", "login", "-o", "json", token=admin, input="y\n")
    assert lifted.exit_code == 0, lifted.stderr
    assert _show(platform, admin, "login")["deletion_protection"] is False

    events = platform.json("audit", "list", "--action", "instance.unprotect", token=admin)
    assert [(e["resource"], e["details"]) for e in events] == [
        ("instance:gent/login", {"deletionProtection": False})
    ]

    deleted = platform.json("instance", "delete", "login", "--yes", token=admin)
    assert deleted["status"]["phase"] == "Deleting"  # Retained once the workloads stopped
    assert deleted["purge_after"]


def test_protect_without_a_question_and_unprotect_yes_in_scripts(
    platform: Platform, admin: str
) -> None:
    _create(platform, admin, "portal", "--plan", "small")
    assert _show(platform, admin, "portal")["deletion_protection"] is False
    protected = platform.json("instance", "protect", "portal", token=admin)
    assert protected["deletion_protection"] is True
    assert platform.run("instance", "delete", "portal", "--yes", token=admin).exit_code == 5

    # Not in a terminal: refuses to guess, unless --yes.
    unasked = platform.run("instance", "unprotect", "portal", token=admin)
    assert unasked.exit_code == 2, (unasked.stdout, unasked.stderr)
    assert _show(platform, admin, "portal")["deletion_protection"] is True
    assert (
        platform.json("instance", "unprotect", "portal", "--yes", token=admin)[
            "deletion_protection"
        ]
        is False
    )
    assert platform.run("instance", "delete", "portal", "--yes", token=admin).exit_code == 0


def test_a_plan_declaring_protection_protects_its_instances(
    platform: Platform, operator: str, admin: str
) -> None:
    """The plan flag is metadata: publishing it amends the version, its digest stays."""
    shipped = load_catalog().release(SERVICE, VERSION)
    plans = [p.model_copy(update={"deletion_protection": p.name == "large"}) for p in shipped.plans]
    for session in open_session(platform.engine):
        before = find_version(session, SERVICE, VERSION)
        assert before is not None
        digest = before.digest
        result = publish_release(session, shipped.model_copy(update={"plans": plans}))
        session.commit()
    assert result.outcome is PublishOutcome.AMENDED
    assert result.record.digest == digest == shipped.digest

    assert _create(platform, admin, "archive", "--plan", "large")["deletion_protection"] is True
    _create(platform, admin, "wiki", "--plan", "small")
    changed = platform.json("instance", "update", "wiki", "--plan", "large", token=admin)
    assert changed["deletion_protection"] is True
    refused = platform.run("instance", "delete", "wiki", "--yes", token=admin)
    assert refused.exit_code == 5
    assert "cityctl instance unprotect wiki" in refused.stderr
