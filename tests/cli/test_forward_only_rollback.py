"""Rollbacks across forward-only data migrations, through cityctl against a real API.

Issue 14: rolling Keycloak back from 26.0.7 to 25.0.6 (or Open Zaak from 1.17.0 to 1.14.2)
was accepted with no word about the database migrations that only go forward. Versions now
declare ``forward_only_migrations``; a rollback across one is refused (409
``data_loss_refused``) unless the tenant-admin or an operator says ``--allow-data-loss``.

The tests of this module share one control plane and run in order: the first publishes
the shipped Keycloak versions over the same versions published without the flag.
"""

from __future__ import annotations

import json

import pytest
import typer.testing

from controlplane.auth.models import Role
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import publish_release
from controlplane.db.sessions import open_session
from tests.cli.conftest import Platform, municipalities_csv

SERVICE = "keycloak"
OLD, NEW = "25.0.6", "26.0.7"  # 26.0.7 is shipped with forward_only_migrations: true
SETTLED = {"Ready", "Committed"}  # Committed: the GitOps target does not observe the cluster


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An operator token, with Keycloak published as before the flag existed (False)."""
    token = platform.issue_token(Role.OPERATOR, "forward-only-operator")
    catalog = load_catalog()
    for session in open_session(platform.engine):
        for version in (OLD, NEW):
            shipped = catalog.release(SERVICE, version)
            legacy = shipped.model_copy(
                update={
                    "version": shipped.version.model_copy(update={"forward_only_migrations": False})
                }
            )
            publish_release(session, legacy, published_by="before-the-flag")
        session.commit()
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    assert platform.run("tenant", "import", str(csv_file), token=token).exit_code == 0
    return token


@pytest.fixture(scope="module")
def admin(platform: Platform, operator: str) -> str:
    created = platform.ok(
        "token", "create", "--name", "gent-admin", "--role", "tenant-admin", "--tenant", "gent",
        token=operator,
    )  # fmt: skip
    return created.stdout.strip()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cityctl ran in a terminal: CliRunner's stdin answers the question."""
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)


def versions(platform: Platform, token: str) -> dict[str, dict[str, object]]:
    summary = platform.json("catalog", "show", SERVICE, token=token)
    return {v["version"]: v for v in summary["versions"]}


def upgraded(platform: Platform, token: str, name: str) -> dict[str, object]:
    """An instance created on OLD and upgraded to NEW (revisions 1 and 2)."""
    platform.ok(
        "instance", "create", name, "--service", SERVICE, "--version", OLD, "--plan", "small",
        "--set", "admin_username=gentadmin", "--wait", "--timeout", "60", token=token,
    )  # fmt: skip
    up = platform.json(
        "instance", "upgrade", name, "--version", NEW, "--wait", "--timeout", "60", token=token
    )
    assert up["version"] == NEW
    assert up["status"]["phase"] in SETTLED
    return up


def test_shipped_catalogue_amends_the_flag_without_changing_digests(
    platform: Platform, operator: str
) -> None:
    before = versions(platform, operator)
    assert not any(v["forward_only_migrations"] for v in before.values())

    published = platform.json("catalog", "publish", SERVICE, token=operator)
    outcomes = {r["version"]: r["outcome"] for r in published["published"]}
    assert outcomes == {OLD: "unchanged", NEW: "amended"}, published
    assert {r["version"]: r["digest"] for r in published["published"]} == {
        v: before[v]["digest"] for v in before
    }

    after = versions(platform, operator)
    assert {v: after[v]["digest"] for v in after} == {v: before[v]["digest"] for v in before}
    assert (after[OLD]["forward_only_migrations"], after[NEW]["forward_only_migrations"]) == (
        False,
        True,
    )
    shown = platform.ok("catalog", "show", SERVICE, token=operator).stdout
    assert "forward-only" in shown
    assert "--allow-data-loss" in shown


def test_rollback_across_forward_only_is_refused_and_changes_nothing(
    platform: Platform, admin: str
) -> None:
    before = upgraded(platform, admin, "login")

    for dry in ([], ["--dry-run"]):
        refused = platform.run("instance", "rollback", "login", *dry, token=admin)
        assert refused.exit_code == 5, (refused.stdout, refused.stderr)
        assert NEW in refused.stderr
        assert OLD in refused.stderr
        assert "forward only" in refused.stderr
        assert "cityctl instance rollback login --revision 1 --allow-data-loss" in refused.stderr

    after = platform.json("instance", "show", "login", token=admin)
    assert (after["version"], after["generation"]) == (NEW, before["generation"])
    assert len(platform.json("instance", "history", "login", token=admin)) == 2


def test_allow_data_loss_asks_then_rolls_back_and_is_audited(
    platform: Platform, admin: str, operator: str, terminal: None
) -> None:
    declined = platform.run(
        "instance", "rollback", "login", "--allow-data-loss", token=admin, input="n\n"
    )
    assert declined.exit_code != 0
    assert NEW in declined.stdout + declined.stderr
    assert platform.json("instance", "show", "login", token=admin)["version"] == NEW

    rolled = platform.run(
        "instance", "rollback", "login", "--allow-data-loss", "--wait", "--timeout", "60",
        "-o", "json", token=admin, input="y\n",
    )  # fmt: skip
    assert rolled.exit_code == 0, rolled.stderr
    instance = json.loads(rolled.stdout[rolled.stdout.index("{") :])
    assert instance["version"] == OLD
    assert instance["status"]["phase"] in SETTLED

    events = [
        e
        for e in platform.json("audit", "list", token=operator)
        if e["action"] == "instance.rollback"
    ]
    assert len(events) == 1, events
    details = events[0]["details"]
    assert details["allowDataLoss"] is True
    assert details["forwardOnlyCrossed"] == [NEW]
    assert details["revision"] == 1


def test_upgrade_path_is_unaffected(platform: Platform, admin: str) -> None:
    again = platform.json(
        "instance", "upgrade", "login", "--version", NEW, "--wait", "--timeout", "60", token=admin
    )
    assert again["version"] == NEW
    assert again["status"]["phase"] in SETTLED
