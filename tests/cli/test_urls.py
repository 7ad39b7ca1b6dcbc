"""Where an instance answers, through cityctl against a real API (issue 14).

``instance create/update --wait`` and ``instance show`` print the URLs of the service's
entry points on the instance's host name, and say honestly what is known: only phase Ready
says the workloads are available; the others say where it *will* answer. ``-o json``
carries them as ``urls``; ``catalog show`` lists the entry points a service declares.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, serve_platform


def _bootstrap(platform: Platform) -> str:
    token = platform.issue_token(Role.OPERATOR, "urls-operator")
    platform.ok("catalog", "publish", token=token)
    platform.ok(
        "tenant", "create", "--name", "Gent", "--nis-code", "44021", "--slug", "gent", token=token
    )
    return token


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A control plane without a worker: its instances stay Pending."""
    yield from serve_platform(tmp_path_factory.mktemp("idle"), with_worker=False)


def test_catalog_show_lists_the_entry_points(platform: Platform) -> None:
    token = _bootstrap(platform)
    shown = platform.ok("catalog", "show", "signalen", token=token).stdout
    assert "Entry points of" in shown
    assert "https://api.<hostname>/signals/admin/" in shown
    assert "https://<hostname>/" in shown
    details = platform.json("catalog", "show", "keycloak", "--version", "26.0.7", token=token)
    assert {e["name"]: e["path"] for e in details["entry_points"]} == {
        "public": "/realms/master/account/",
        "admin": "/admin/",
    }


def test_create_update_and_show_print_the_urls(platform: Platform) -> None:
    token = platform.tokens.get("operator") or platform.issue_token(Role.OPERATOR, "urls-op-2")
    created = platform.run(
        "instance", "create", "login", "--tenant", "gent", "--service", "keycloak",
        "--plan", "small", "--set", "hostname=login.gent.apps.city-platform.local",
        "--wait", "--timeout", "60", "-o", "json",
        token=token,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    instance = json.loads(created.stdout)
    assert {u["name"]: u["url"] for u in instance["urls"]} == {
        "public": "https://login.gent.apps.city-platform.local/realms/master/account/",
        "admin": "https://login.gent.apps.city-platform.local/admin/",
    }
    phase = instance["status"]["phase"]
    assert phase in ("Ready", "Committed")
    heading = (
        "URLs (the instance is Ready: its workloads are available):"
        if phase == "Ready"
        else "URLs (will be reachable once the GitOps controller has applied the commit"
    )
    assert heading in created.stderr, created.stderr
    assert (
        "admin   https://login.gent.apps.city-platform.local/admin/  (Admin console)"
        in created.stderr
    )
    if phase != "Ready":
        assert "the instance is Ready" not in created.stderr

    updated = platform.run(
        "instance", "update", "login", "--tenant", "gent", "--plan", "medium", "--wait",
        "--timeout", "60", token=token,
    )  # fmt: skip
    assert updated.exit_code == 0, updated.stderr
    assert "https://login.gent.apps.city-platform.local/realms/master/account/" in updated.stderr

    shown = platform.ok("instance", "show", "login", "--tenant", "gent", token=token)
    document = yaml.safe_load(shown.stdout)  # stdout stays the document
    assert [u["url"] for u in document["urls"]] == [
        "https://login.gent.apps.city-platform.local/realms/master/account/",
        "https://login.gent.apps.city-platform.local/admin/",
    ]
    assert (
        "public  https://login.gent.apps.city-platform.local/realms/master/account/" in shown.stderr
    )

    platform.ok("instance", "delete", "login", "--tenant", "gent", "--yes", "--wait", token=token)


def test_a_pending_instance_is_not_called_reachable(idle: Platform) -> None:
    token = _bootstrap(idle)
    created = idle.run(
        "instance", "create", "site", "--tenant", "gent", "--service", "nextcloud",
        "--plan", "small", "--set", "hostname=files.gent.apps.city-platform.local",
        "-o", "json", token=token,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert (
        json.loads(created.stdout)["urls"][0]["url"]
        == "https://files.gent.apps.city-platform.local/"
    )
    shown = idle.ok("instance", "show", "site", "--tenant", "gent", token=token)
    assert "URLs (will be reachable once Ready; now Pending):" in shown.stderr
    assert (
        "https://files.gent.apps.city-platform.local/settings/admin  (Administration settings)"
        in shown.stderr
    )
    assert "the instance is Ready" not in shown.stderr
    as_json = idle.json("instance", "show", "site", "--tenant", "gent", token=token)
    assert [u["name"] for u in as_json["urls"]] == ["public", "admin"]
    deleted = idle.run("instance", "delete", "site", "--tenant", "gent", "--yes", token=token)
    assert deleted.exit_code == 0, deleted.stderr
    after = idle.json("instance", "show", "site", "--tenant", "gent", token=token)
    assert after["urls"] == []
