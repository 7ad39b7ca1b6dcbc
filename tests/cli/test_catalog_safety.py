"""Deprecating and retiring a version, through cityctl against a real API on loopback.

Issue 14: `catalog retire` retired the last active Keycloak version while instances ran
on it, without a question, and nothing could undo it. Now both commands show who runs
the version and ask; the last usable version of a service in use is only retired with
--force; `catalog reactivate` undoes a retirement.

The tests of this module share one control plane and run in order.
"""

from __future__ import annotations

import json

import pytest
import typer.testing

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv

SERVICE = "keycloak"
OLD, NEW = "25.0.6", "26.0.7"  # shipped as deprecated (with a support end) and active


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "catalog-safety-operator")
    assert platform.run("catalog", "publish", SERVICE, token=token).exit_code == 0
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent", "Aalst"))
    assert platform.run("tenant", "import", str(csv_file), token=token).exit_code == 0
    for tenant, name in (("gent", "login"), ("gent", "intranet"), ("aalst", "login")):
        create(platform, token, tenant, name, NEW)
    return token


def create(
    platform: Platform, token: str, tenant: str, name: str, version: str
) -> typer.testing.Result:
    return platform.run(
        "instance",
        "create",
        name,
        "--service",
        SERVICE,
        "--version",
        version,
        "--plan",
        "small",
        "--set",
        f"admin_username={tenant}admin",
        "--tenant",
        tenant,
        "-o",
        "json",
        token=token,
    )


def status(platform: Platform, token: str, version: str) -> str:
    summary = json.loads(platform.ok("catalog", "show", SERVICE, "-o", "json", token=token).stdout)
    return {v["version"]: v["status"] for v in summary["versions"]}[version]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if cityctl ran in a terminal: CliRunner's stdin answers the question."""
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)


def test_deprecate_shows_the_impact_and_asks(
    platform: Platform, operator: str, terminal: None
) -> None:
    answered_no = platform.run("catalog", "deprecate", SERVICE, NEW, token=operator, input="n\n")
    assert answered_no.exit_code == 1, answered_no.stderr
    assert f"{SERVICE} {NEW} (active): 3 live instance(s) in 2 tenant(s)" in answered_no.stderr
    assert "gent: 2 instance(s)" in answered_no.stderr
    assert "aalst: 1 instance(s)" in answered_no.stderr
    assert f"Deprecate {SERVICE} {NEW} (3 live instance(s) in 2 tenant(s))?" in (
        answered_no.stdout + answered_no.stderr
    )
    assert "Cancelled; nothing was changed." in answered_no.stderr
    assert status(platform, operator, NEW) == "active"


def test_no_terminal_and_no_yes_is_refused(platform: Platform, operator: str) -> None:
    for verb in ("deprecate", "retire"):
        refused = platform.run("catalog", verb, SERVICE, OLD, token=operator)
        assert refused.exit_code == 2, refused.stderr
        assert "stdin is not a terminal" in refused.stderr
        assert "--yes" in refused.stderr
    assert status(platform, operator, OLD) == "deprecated"


def test_yes_proceeds_without_asking(platform: Platform, operator: str) -> None:
    retired = platform.run("catalog", "retire", SERVICE, OLD, "--yes", token=operator)
    assert retired.exit_code == 0, retired.stderr
    assert f"{SERVICE} {OLD} (deprecated): 0 live instance(s) in 0 tenant(s)" in retired.stderr
    assert f"{SERVICE} {OLD} is retired." in retired.stderr
    assert status(platform, operator, OLD) == "retired"


def test_retiring_the_last_usable_version_in_use_needs_force(
    platform: Platform, operator: str, terminal: None
) -> None:
    # Not asked (the API refuses anyway), and the hint names the option that exists.
    refused = platform.run("catalog", "retire", SERVICE, NEW, token=operator, input="y\n")
    assert refused.exit_code == 5, refused.stderr
    assert "last version of keycloak that new instances can use" in refused.stderr
    assert "?" not in refused.stdout
    assert f"cityctl catalog retire {SERVICE} {NEW} --force" in refused.stderr
    assert status(platform, operator, NEW) == "active"

    forced = platform.run("catalog", "retire", SERVICE, NEW, "--force", token=operator, input="y\n")
    assert forced.exit_code == 0, forced.stderr
    assert f"{SERVICE} {NEW} is retired." in forced.stderr
    assert status(platform, operator, NEW) == "retired"
    assert create(platform, operator, "gent", "portal", NEW).exit_code != 0


def test_reactivate_restores_the_version(platform: Platform, operator: str) -> None:
    restored = platform.run("catalog", "reactivate", SERVICE, NEW, token=operator)
    assert restored.exit_code == 0, restored.stderr
    assert f"{SERVICE} {NEW} is active." in restored.stderr
    created = create(platform, operator, "gent", "portal", NEW)
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["version"] == NEW

    # A version with a support end goes back to deprecated; reactivating twice is refused.
    assert platform.run("catalog", "reactivate", SERVICE, OLD, token=operator).exit_code == 0
    assert status(platform, operator, OLD) == "deprecated"
    again = platform.run("catalog", "reactivate", SERVICE, OLD, token=operator)
    assert again.exit_code == 5, again.stderr
    assert "only a retired version can be reactivated" in again.stderr

    events = platform.json("audit", "list", "--action", "catalog.reactivate", token=operator)
    assert sorted((e["resource"], e["details"]["status"]) for e in events) == [
        (f"service:{SERVICE}/{OLD}", "deprecated"),
        (f"service:{SERVICE}/{NEW}", "active"),
    ]
    forced = platform.json("audit", "list", "--action", "catalog.retire", token=operator)
    assert {e["resource"]: e["details"]["force"] for e in forced} == {
        f"service:{SERVICE}/{OLD}": False,
        f"service:{SERVICE}/{NEW}": True,
    }
