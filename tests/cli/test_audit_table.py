"""Tables that say what happened: the audit trail names instance changes by what they did,
and a deleted instance's row does not show a generation that looks still pending (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "tables-operator")
    platform.ok("catalog", "publish", token=token)
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    platform.ok("tenant", "import", str(csv_file), token=token)
    return token


def _rows(table: str) -> list[dict[str, str]]:
    """The rows of a table whose cells up to the last column have no spaces."""
    lines = [line for line in table.splitlines() if line.strip()]
    header = lines[0].split()
    return [
        dict(zip(header, line.split(maxsplit=len(header) - 1), strict=False)) for line in lines[1:]
    ]


def _listed(folder: Path) -> list[str]:
    return list(yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"])


def _wait(platform: Platform, token: str, *args: str) -> None:
    platform.ok("instance", *args, "--tenant", "gent", "--wait", "--timeout", "60", token=token)


def test_audit_table_names_instance_changes(platform: Platform, operator: str) -> None:
    _wait(
        platform,
        operator,
        "create",
        "login",
        "--service",
        "keycloak",
        "--version",
        "25.0.6",
        "--plan",
        "small",
        "--set",
        "admin_username=gentadmin",
    )
    _wait(platform, operator, "update", "login", "--plan", "medium")
    _wait(platform, operator, "update", "login", "--set", "admin_username=stad")
    _wait(platform, operator, "upgrade", "login")
    _wait(platform, operator, "rollback", "login", "--revision", "2", "--allow-data-loss", "--yes")

    table = platform.ok("audit", "list", "--tenant", "gent", "-o", "table", token=operator).stdout
    assert "WHAT" in table.splitlines()[0], table
    for said in (
        "plan small → medium",
        "parameters changed (keys: admin_username)",
        "upgrade 25.0.6 → 26.0.7",
        "rollback to revision 2",
    ):
        assert said in table, (said, table)
    assert "stad" not in table  # parameter values are never shown, only their keys

    # JSON stays the API's document: no computed column.
    events = platform.json("audit", "list", "--tenant", "gent", token=operator)
    assert events
    assert all("what" not in event for event in events)


def test_deleted_row_shows_the_generation_it_ended_at(platform: Platform, operator: str) -> None:
    _wait(
        platform,
        operator,
        "create",
        "portal",
        "--service",
        "keycloak",
        "--version",
        "26.0.7",
        "--plan",
        "small",
        "--set",
        "admin_username=gentadmin",
    )
    # The embedded GitOps target lists tenants and instances in root kustomizations.
    tree = platform.data_dir / "gitops"
    assert "gent" in _listed(tree)
    assert _listed(tree / "gent") == ["login", "portal"]

    deleted = platform.run(
        "instance",
        "delete",
        "portal",
        "--purge",
        "--tenant",
        "gent",
        "--yes",
        "--wait",
        "--timeout",
        "60",
        "-o",
        "table",
        token=operator,
    )
    assert deleted.exit_code == 0, deleted.stderr
    [row] = _rows(deleted.stdout)
    assert row["PHASE"] == "Deleted", deleted.stdout
    # The deletion is generation 2; the row must not say "observed 1" as if it were pending.
    assert (row["GEN"], row["OBSERVED"]) == ("2", "2"), deleted.stdout
    assert _listed(tree / "gent") == ["login"]
