"""A newcomer's first hour (issue 14): what cityctl and `controlplane` print when you
get things slightly wrong, or just look.

Runs cityctl against a real API on loopback (this module's own control plane: it
deprecates a version, which must not leak into the journeys), and `controlplane` as a
real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, free_socket, municipalities_csv

USAGE = 2
CONTROLPLANE = Path(sys.executable).with_name("controlplane")
POSTGRES = (
    os.environ.get(
        "CONTROLPLANE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ).rsplit("/", 1)[0]
    + "/postgres"
)


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "newcomer-operator")
    platform.ok("catalog", "publish", token=token)
    csv_file = municipalities_csv(tmp_path_factory.mktemp("csv"), ("Gent", "Aalst", "Lier"))
    platform.ok("tenant", "import", str(csv_file), token=token)
    return token


def _error_and_hint(stderr: str) -> tuple[str, str]:
    lines = stderr.strip().splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("error: "), stderr
    assert lines[1].startswith("hint: "), stderr
    return lines[0], lines[1]


def test_max_instances_below_the_live_count_is_refused(platform: Platform, operator: str) -> None:
    for name in ("stats", "stats2"):
        platform.ok(
            "instance", "create", name, "--tenant", "aalst", "--service", "matomo",
            "--plan", "small", token=operator,
        )  # fmt: skip
    refused = platform.run("tenant", "update", "aalst", "--max-instances", "1", token=operator)
    assert refused.exit_code == USAGE, refused.stderr
    error, hint = _error_and_hint(refused.stderr)
    assert "aalst has 2 live instances; max_instances cannot be 1" in error
    assert "cityctl instance delete" in hint
    assert "--max-instances 2" in hint
    assert platform.json("tenant", "show", "aalst", token=operator)["max_instances"] == 20
    # As many as there are, or more, is fine.
    platform.ok("tenant", "update", "aalst", "--max-instances", "2", token=operator)


def test_tenant_import_prints_a_summary_not_every_row(
    platform: Platform, operator: str, tmp_path: Path
) -> None:
    csv_file = municipalities_csv(tmp_path, ("Gent", "Aalst", "Lier", "Mol", "Geel"))
    result = platform.ok("tenant", "import", str(csv_file), token=operator)
    assert result.stdout.strip().splitlines() == [
        "Imported municipalities.csv: 2 created, 0 updated, 3 unchanged. "
        "(Source: Statbel, CC BY 4.0)"
    ]
    assert "geel" not in result.stdout
    # Scripts still get every slug.
    again = platform.json("tenant", "import", str(csv_file), token=operator)
    assert sorted(again["unchanged"]) == ["aalst", "geel", "gent", "lier", "mol"]


def test_tables_speak_json_words_and_say_when_empty(platform: Platform, operator: str) -> None:
    contexts = platform.ok("context", "list", token=operator)
    assert "True" not in contexts.stdout
    assert "False" not in contexts.stdout
    platform.run("login", "--token", operator, "--context", "first")
    listed = platform.ok("context", "list")
    assert "first" in listed.stdout
    assert "true" in listed.stdout
    assert "True" not in listed.stdout
    tenants = platform.ok("tenant", "list", token=operator).stdout
    assert "None" not in tenants
    assert "True" not in tenants
    domains = platform.ok("tenant", "domain", "list", "gent", token=operator)
    assert domains.stdout == ""
    assert "No domains granted to gent." in domains.stderr
    shown = platform.ok("tenant", "show", "gent", "-o", "yaml", token=operator).stdout
    assert "~" not in shown
    assert "group: null" in shown


def test_catalog_show_lists_allowed_values_and_past_support(
    platform: Platform, operator: str
) -> None:
    shown = platform.ok("catalog", "show", "keycloak", token=operator).stdout
    assert "ALLOWED" in shown
    assert "ERROR, WARN, INFO, DEBUG" in shown
    # The shipped catalogue deprecates keycloak 25.0.6, unsupported after 2025-06-30.
    versions = platform.json("catalog", "show", "keycloak", token=operator)["versions"]
    old = next(v["version"] for v in versions if v["support_ends"] == "2025-06-30")
    assert "unsupported since 2025-06-30" in shown
    created = platform.run(
        "instance", "create", "login", "--tenant", "gent", "--service", "keycloak",
        "--version", old, "--plan", "small", token=operator,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert "unsupported since 2025-06-30" in created.stderr
    assert "support ends 2025-06-30" not in created.stderr


def test_login_takes_the_server_from_the_environment(platform: Platform, operator: str) -> None:
    # CITYCTL_SERVER is set by platform.env; no --server given.
    login = platform.run("login", "--token", operator, "--context", "from-env")
    assert login.exit_code == 0, login.stderr
    saved = json.loads((platform.home / "config.json").read_text())
    assert saved["contexts"]["from-env"]["server"] == platform.url
    missing = platform.run(
        "login", "--token", operator, "--context", "nowhere", CITYCTL_SERVER=None
    )
    assert missing.exit_code == USAGE
    error, hint = _error_and_hint(missing.stderr)
    assert "server" in error
    assert "--server" in hint
    assert "CITYCTL_SERVER" in hint


def _controlplane(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTROLPLANE_")}
    env.update(
        CONTROLPLANE_DATA_DIR=str(tmp_path / "data"),
        CONTROLPLANE_SERVER_SECRET="newcomer-tests-secret-0123456789abcdef",
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(settings)
    return subprocess.run(
        [str(CONTROLPLANE), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    taken = free_socket()
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = _controlplane(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))
    finally:
        taken.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0]
    assert "CONTROLPLANE_PORT" in lines[0]


def test_bootstrap_says_which_database(tmp_path: Path) -> None:
    result = _controlplane(tmp_path, "bootstrap")
    assert result.returncode == 0, result.stderr
    database = (tmp_path / "data" / "controlplane.db").resolve()
    assert f"sqlite:///{database}" in result.stderr
    assert result.stdout.strip().startswith("cp_")


def test_bootstrap_masks_the_database_password(tmp_path: Path) -> None:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"newcomer_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        # The test server trusts local connections: the password is only there to be hidden.
        url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:5432/{name}"
        migrated = _controlplane(tmp_path, "migrate", CONTROLPLANE_DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        result = _controlplane(tmp_path, "bootstrap", CONTROLPLANE_DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        assert f"postgresql+psycopg://postgres:***@127.0.0.1:5432/{name}" in result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
