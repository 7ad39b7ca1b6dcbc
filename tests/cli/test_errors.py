"""Every failure of cityctl: one line, a hint, and the documented exit code.

Runs against a real API on loopback (its own control plane: this module publishes a
deliberately broken release, which must not leak into the journeys).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from tests.cli.billing_world import new_token, open_platform
from tests.cli.conftest import Platform, municipalities_csv

USAGE, AUTH, NOT_FOUND, CONFLICT, SERVER, FAILED, TIMEOUT = 2, 3, 4, 5, 6, 1, 7


def assert_fails(result: Result, code: int) -> str:
    """The documented exit code, an `error:` line and a `hint:` line on stderr, no data."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    # Exactly one error line, then its hint, and nothing after them.
    assert len(errors) == 1, result.stderr
    assert len(lines) == errors[0] + 2, result.stderr
    assert lines[-1].startswith("hint: "), result.stderr
    assert result.stdout == ""
    return result.stderr


@pytest.fixture(scope="module")
def tokens(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = open_platform(
        platform, municipalities_csv(tmp_path_factory.mktemp("csv"), ("Gent", "Aalst"))
    )
    return {
        "operator": operator,
        "admin": new_token(platform, operator, "gent-admin", "tenant-admin", "gent"),
    }


def test_unknown_instance_is_not_found(platform: Platform, tokens: dict[str, str]) -> None:
    for args in (
        ("instance", "show", "nope"),
        ("instance", "history", "nope"),
        ("instance", "update", "nope", "--plan", "small"),
        ("instance", "delete", "nope", "--yes"),
    ):
        assert_fails(platform.run(*args, token=tokens["admin"]), NOT_FOUND)
    assert_fails(platform.run("catalog", "show", "no-such-service", token=tokens["admin"]), 4)
    assert_fails(platform.run("tenant", "show", "atlantis", token=tokens["operator"]), 4)
    assert_fails(platform.run("token", "revoke", "nobody", "--yes", token=tokens["operator"]), 4)


def test_same_name_twice_is_a_conflict(platform: Platform, tokens: dict[str, str]) -> None:
    args = ("instance", "create", "stats", "--service", "matomo", "--plan", "small")
    platform.ok(*args, token=tokens["admin"])
    assert_fails(platform.run(*args, token=tokens["admin"]), CONFLICT)
    duplicate = platform.run(
        "tenant", "create", "--name", "Gent bis", "--nis-code", "44021", token=tokens["operator"]
    )
    assert_fails(duplicate, CONFLICT)


@pytest.mark.parametrize("item", ["admin_username", "=x", "a..b=1", "a.=1"])
def test_malformed_set_is_a_usage_error(
    platform: Platform, tokens: dict[str, str], item: str
) -> None:
    result = platform.run(
        "instance",
        "create",
        "login",
        "--service",
        "keycloak",
        "--plan",
        "small",
        "--set",
        item,
        token=tokens["admin"],
    )
    assert "key=value" in assert_fails(result, USAGE)


def test_invalid_input_is_a_usage_error(
    platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    admin = tokens["admin"]
    # The server's parameter schema refuses the value (422).
    refused = platform.run(
        "instance",
        "create",
        "login",
        "--service",
        "keycloak",
        "--plan",
        "small",
        "--set",
        "admin_username=X Y",
        token=admin,
    )
    assert "admin_username" in assert_fails(refused, USAGE)
    # An unknown plan is caught before anything is sent, with the plans that exist.
    unknown_plan = platform.run(
        "instance", "create", "login", "--service", "keycloak", "--plan", "huge", token=admin
    )
    assert "small" in assert_fails(unknown_plan, USAGE)
    values = tmp_path / "values.yaml"
    values.write_text("- a list\n- not a mapping\n")
    not_mapping = platform.run(
        "instance",
        "create",
        "login",
        "--service",
        "keycloak",
        "--plan",
        "small",
        "--values",
        str(values),
        token=admin,
    )
    assert_fails(not_mapping, USAGE)
    # An operator token is not bound to a tenant: say how to name one.
    assert "--tenant" in assert_fails(
        platform.run("instance", "list", token=tokens["operator"]), USAGE
    )
    assert_fails(platform.run("tenant", "update", "gent", token=tokens["operator"]), USAGE)
    assert_fails(
        platform.run("audit", "list", "--since", "yesterday", token=tokens["operator"]), USAGE
    )


def test_values_file_and_set_merge(
    platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("admin_username: fromfile\nlog_level: WARN\n")
    created = platform.json(
        "instance",
        "create",
        "idp",
        "--service",
        "keycloak",
        "--plan",
        "small",
        "--values",
        str(values),
        "--set",
        "log_level=DEBUG",
        "--set",
        "db_pool_max_size=30",
        token=tokens["admin"],
    )
    assert created["parameters"] == {
        "admin_username": "fromfile",
        "log_level": "DEBUG",
        "db_pool_max_size": 30,
    }
    # update merges into the current parameters; --unset removes one.
    updated = platform.json(
        "instance",
        "update",
        "idp",
        "--set",
        "log_level=INFO",
        "--unset",
        "db_pool_max_size",
        token=tokens["admin"],
    )
    assert updated["parameters"] == {"admin_username": "fromfile", "log_level": "INFO"}
    assert updated["generation"] == created["generation"] + 1


def test_authentication_and_permission(platform: Platform, tokens: dict[str, str]) -> None:
    assert_fails(platform.run("catalog", "list"), AUTH)
    bogus = "cp_000000000000_" + "A" * 43
    assert_fails(platform.run("whoami", token=bogus), AUTH)
    assert_fails(platform.run("tenant", "import", __file__, token=tokens["admin"]), AUTH)
    assert_fails(
        platform.run("token", "create", "--name", "x", "--role", "operator", token=tokens["admin"]),
        AUTH,
    )


def test_unreachable_server(platform: Platform, tokens: dict[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` any more.
    result = platform.run(
        "catalog", "list", token=tokens["admin"], CITYCTL_SERVER=f"http://127.0.0.1:{port}"
    )
    assert "Cannot reach" in assert_fails(result, SERVER)


def test_no_server_configured(platform: Platform) -> None:
    assert "login" in assert_fails(platform.run("whoami", CITYCTL_SERVER=None), AUTH)


def test_wait_times_out_when_nothing_reconciles(platform: Platform, tokens: dict[str, str]) -> None:
    assert platform.worker is not None
    platform.worker.stop()
    try:
        result = platform.run(
            "instance",
            "create",
            "slow",
            "--service",
            "matomo",
            "--plan",
            "small",
            "--wait",
            "--timeout",
            "1",
            token=tokens["admin"],
        )
        assert "Gave up waiting" in assert_fails(result, TIMEOUT)
    finally:
        platform.worker.start()
    # The change goes on in the background once a worker runs again.
    settled = platform.json("instance", "show", "slow", token=tokens["admin"])
    assert settled["name"] == "slow"


def _broken_release(platform: Platform, operator: str) -> dict[str, Any]:
    """Keycloak 26.0.7 as published, as 26.0.8 with a template that cannot render."""
    shown = platform.json("catalog", "show", "keycloak", "--version", "26.0.7", token=operator)
    release = {
        key: shown[key]
        for key in (
            "name",
            "title",
            "description",
            "category",
            "owner",
            "plans",
            "parameters",
            "network",
            "shared_cost",
            "bundle",
        )
    }
    release["version"] = {
        **shown["version"],
        "version": "26.0.8",
        "app_version": "26.0.8",
        "upgrade_from": ">=25.0.0,<26.0.8",
    }
    files = release["bundle"]["files"]
    first = sorted(files)[0]
    files[first] += "\n---\n{{ params.no_such_parameter }}\n"
    return release


def test_wait_exits_1_when_the_instance_fails(
    platform: Platform, tokens: dict[str, str], tmp_path: Path
) -> None:
    release_file = tmp_path / "release.json"
    release_file.write_text(json.dumps(_broken_release(platform, tokens["operator"])))
    published = platform.json(
        "catalog", "publish", "--file", str(release_file), token=tokens["operator"]
    )
    assert [(p["version"], p["outcome"]) for p in published["published"]] == [("26.0.8", "created")]
    # Publishing other content under the same version is refused: versions are immutable.
    release = json.loads(release_file.read_text())
    release["description"] += " (changed)"
    release_file.write_text(json.dumps(release))
    assert_fails(
        platform.run("catalog", "publish", "--file", str(release_file), token=tokens["operator"]),
        CONFLICT,
    )

    # cityctl checks a create with a dry run first: the broken template is refused before
    # anything is created.
    refused = platform.run(
        "instance", "create", "broken", "--service", "keycloak", "--version", "26.0.8",
        "--plan", "small", "--wait", token=tokens["admin"],
    )  # fmt: skip
    assert "cannot be rendered" in assert_fails(refused, USAGE)  # 422: exit 2
    assert_fails(platform.run("instance", "show", "broken", token=tokens["admin"]), NOT_FOUND)

    # An upgrade is admitted (its inputs are valid) and fails in the reconciler: --wait
    # reports the failure with exit 1.
    platform.ok(
        "instance", "create", "broken", "--service", "keycloak", "--version", "26.0.7",
        "--plan", "small", "--wait", "--timeout", "60", token=tokens["admin"],
    )  # fmt: skip
    result = platform.run(
        "instance", "upgrade", "broken", "--version", "26.0.8", "--wait", "--timeout", "60",
        token=tokens["admin"],
    )  # fmt: skip
    assert "broken failed" in assert_fails(result, FAILED)
    shown = platform.json("instance", "show", "broken", token=tokens["admin"])
    assert shown["status"]["phase"] == "Failed"
