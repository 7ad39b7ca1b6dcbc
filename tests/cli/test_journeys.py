"""The journeys of each user group, through cityctl against a real API on loopback.

The tests of this module share one control plane and run in order: the operator sets it
up, then a municipality, a viewer and finance use it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv

TOWNS = ("Gent", "Aalst", "Maaseik", "De Panne")


@pytest.fixture(scope="module")
def operator(platform: Platform) -> str:
    token = platform.issue_token(Role.OPERATOR, "bootstrap-operator")
    platform.tokens["operator"] = token
    return token


def test_operator_bootstraps_the_platform(
    platform: Platform, operator: str, tmp_path: Path
) -> None:
    login = platform.run(
        "login",
        "--server",
        platform.url,
        "--token",
        operator,
        "--context",
        "ops",
        CITYCTL_SERVER=None,
    )
    assert login.exit_code == 0, login.stderr
    assert "operator" in login.stderr
    saved = json.loads((platform.home / "config.json").read_text())
    assert saved["current_context"] == "ops"
    assert (platform.home / "config.json").stat().st_mode & 0o777 == 0o600

    # From here on the saved context carries the token (no CITYCTL_TOKEN).
    me = platform.json("whoami")
    assert me["role"] == "operator"
    assert me["tenant"] is None

    published = platform.json("catalog", "publish")["published"]
    assert {item["outcome"] for item in published} == {"created"}
    assert ("keycloak", "26.0.7") in {(i["service"], i["version"]) for i in published}
    again = platform.json("catalog", "publish")["published"]
    assert {item["outcome"] for item in again} == {"unchanged"}
    assert len(again) == len(published)

    csv_file = municipalities_csv(tmp_path, TOWNS)
    summary = platform.json("tenant", "import", str(csv_file))
    assert sorted(summary["created"]) == ["aalst", "de-panne", "gent", "maaseik"]
    assert summary["attribution"] == "Source: Statbel, CC BY 4.0"
    assert platform.json("tenant", "import", str(csv_file))["unchanged"] == summary["created"]

    tenants = {t["slug"]: t for t in platform.json("tenant", "list")}
    assert set(tenants) == {"aalst", "de-panne", "gent", "maaseik"}
    gent = platform.json("tenant", "show", "gent")
    assert gent["nis_code"] == "44021"
    assert gent["inhabitants"] > 200_000
    updated = platform.json("tenant", "update", "gent", "--max-instances", "5")
    assert updated["max_instances"] == 5
    assert updated["version"] == gent["version"] + 1

    targets = platform.json("target", "list")
    assert [t["is_default"] for t in targets] == [True]
    assert targets[0]["kind"] == "gitops"

    # In table mode only the token goes to stdout, so $(cityctl token create …) captures it.
    created = platform.ok(
        "token", "create", "--name", "gent-admin", "--role", "tenant-admin", "--tenant", "gent"
    )
    platform.tokens["gent-admin"] = created.stdout.strip()
    assert platform.tokens["gent-admin"].startswith("cp_")
    assert "shown only now" in created.stderr
    viewer = platform.json(
        "token", "create", "--name", "gent-viewer", "--role", "tenant-viewer", "--tenant", "gent"
    )
    platform.tokens["gent-viewer"] = viewer["token"]
    assert viewer["role"] == "tenant-viewer"
    finance = platform.json("token", "create", "--name", "finance", "--role", "finance")
    platform.tokens["finance"] = finance["token"]

    listed = {t["name"]: t for t in platform.json("token", "list")}
    assert {"bootstrap-operator", "gent-admin", "gent-viewer", "finance"} <= set(listed)
    assert all("token" not in t for t in listed.values())
    assert listed["gent-admin"]["tenant"] == "gent"

    actions = {e["action"] for e in platform.json("audit", "list")}
    assert {"catalog.publish", "tenant.import", "tenant.update", "token.create"} <= actions


def test_municipality_runs_its_service(platform: Platform) -> None:
    token = platform.tokens["gent-admin"]
    assert platform.json("whoami", token=token)["tenant"] == "gent"
    services = {s["name"]: s for s in platform.json("catalog", "list", token=token)}
    assert "keycloak" in services
    versions = {v["version"]: v["status"] for v in services["keycloak"]["versions"]}
    assert versions == {"25.0.6": "deprecated", "26.0.7": "active"}

    created = platform.run(
        "instance",
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
        "--wait",
        "--timeout",
        "60",
        "-o",
        "json",
        token=token,
    )
    assert created.exit_code == 0, created.stderr
    assert "€ 95.00 per month" in created.stderr
    assert "deprecated" in created.stderr
    instance = json.loads(created.stdout)
    assert instance["tenant"] == "gent"
    # The embedded GitOps target does not observe a cluster: it settles at Committed.
    assert "Waiting for Committed (the target" in created.stderr
    assert (instance["settles_at"], instance["status"]["phase"]) == ("Committed", "Committed")
    assert instance["status"]["observedGeneration"] == instance["generation"] == 1
    assert instance["parameters"] == {"admin_username": "gentadmin"}
    stack = platform.data_dir / "gitops" / "gent" / "login"
    assert (stack / "kustomization.yaml").is_file()

    changed = platform.json(
        "instance", "update", "login", "--plan", "medium", "--wait", token=token
    )
    assert (changed["plan"], changed["status"]["phase"]) == ("medium", "Committed")
    assert changed["generation"] == 2
    assert changed["parameters"] == {"admin_username": "gentadmin"}

    upgraded = platform.json("instance", "upgrade", "login", "--wait", token=token)
    assert (upgraded["version"], upgraded["status"]["phase"]) == ("26.0.7", "Committed")

    history = platform.json("instance", "history", "login", token=token)
    assert [(r["number"], r["version"], r["plan"]) for r in history] == [
        (3, "26.0.7", "medium"),
        (2, "25.0.6", "medium"),
        (1, "25.0.6", "small"),
    ]
    assert {r["outcome"] for r in history} <= {"applied", "superseded"}

    # Without --revision: back to the last applied revision before the current one; 26.0.7
    # migrates data forward only, so the tenant-admin accepts the loss (issue 14).
    rolled = platform.json(
        "instance", "rollback", "login", "--allow-data-loss", "--yes", "--wait", token=token
    )
    assert (rolled["version"], rolled["plan"], rolled["status"]["phase"]) == (
        "25.0.6",
        "medium",
        "Committed",
    )
    newest = platform.json("instance", "history", "login", token=token)[0]
    assert (newest["number"], newest["rollback_of"]) == (4, 2)

    listed = platform.json("instance", "list", token=token)
    assert [(i["name"], i["status"]["phase"]) for i in listed] == [("login", "Committed")]
    # Back on the deprecated version: the table says so, with the date and the way out.
    support_ends = listed[0]["lifecycle"]["support_ends"]
    for command in ("list", "show"):
        table = platform.ok(
            "instance", command, *(["login"] * (command == "show")), "-o", "table", token=token
        ).stdout
        # 2025-06-30 is in the past: it reads as past (issue 14).
        assert f"unsupported since {support_ends}" in table, table
        assert "upgrade available: 26.0.7" in table, table

    refused = platform.run("instance", "delete", "login", token=token)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr

    deleted = platform.run(
        "instance", "delete", "login", "--purge", "--yes", "--wait", "--timeout", "60",
        token=token,
    )  # fmt: skip
    assert deleted.exit_code == 0, deleted.stderr
    gone = platform.run("instance", "show", "login", token=token)
    assert gone.exit_code == 4
    assert "hint:" in gone.stderr
    assert not (stack / "kustomization.yaml").exists()

    own = platform.json("audit", "list", token=token)
    assert own
    assert {e["tenant"] for e in own} == {"gent"}


def test_tenant_viewer_reads_but_cannot_create(platform: Platform) -> None:
    token = platform.tokens["gent-viewer"]
    assert platform.json("instance", "list", token=token) == []
    refused = platform.run(
        "instance",
        "create",
        "forms",
        "--service",
        "open-formulieren",
        "--plan",
        "small",
        token=token,
    )
    assert refused.exit_code == 3, refused.stderr
    assert "hint:" in refused.stderr


def test_tenants_do_not_see_each_other(platform: Platform) -> None:
    token = platform.tokens["gent-admin"]
    other = platform.run("instance", "list", "--tenant", "aalst", token=token)
    assert other.exit_code == 4
    assert [t["slug"] for t in platform.json("tenant", "list", token=token)] == ["gent"]


def _this_month() -> str:
    return datetime.now(ZoneInfo("Europe/Brussels")).strftime("%Y-%m")


def _last_month() -> str:
    first = datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def test_finance_pulls_reports(platform: Platform, tmp_path: Path) -> None:
    finance, admin = platform.tokens["finance"], platform.tokens["gent-admin"]
    estimate = platform.json(
        "billing",
        "estimate",
        "--service",
        "keycloak",
        "--plan",
        "small",
        "--tenant",
        "gent",
        token=finance,
    )
    assert (estimate["tenant"], estimate["plan_fee"]) == ("gent", "95.00")

    month = _this_month()
    report = platform.json("billing", "report", month, token=finance)
    assert report["period"] == month
    statements = {s["tenant"]["slug"]: s for s in report["statements"]}
    # Gent ran Keycloak this month, so it carries Keycloak's shared cost.
    assert "gent" in statements
    assert any(line["service"] == "keycloak" for line in statements["gent"]["lines"])
    own = platform.json("billing", "report", month, "--tenant", "gent", token=admin)
    assert own["tenant"]["slug"] == "gent"
    assert own["totals"] == statements["gent"]["totals"]
    assert platform.run("billing", "report", month, "--tenant", "aalst", token=admin).exit_code == 4

    exported = platform.ok(
        "billing",
        "export",
        month,
        "--format",
        "csv-be",
        "--file",
        str(tmp_path / "be.csv"),
        token=finance,
    )
    assert exported.stdout.strip() == str(tmp_path / "be.csv")
    assert ";" in (tmp_path / "be.csv").read_text(encoding="utf-8-sig").splitlines()[0]

    previous = _last_month()
    closed = platform.json("billing", "close", previous, "--yes", token=finance)
    assert closed["status"] == "closed"
    assert platform.json("billing", "report", previous, token=finance)["digest"] == closed["digest"]
    assert platform.run("billing", "close", previous, "--yes", token=finance).exit_code == 5
    refused = platform.run("billing", "reopen", previous, "--reason", "x", "--yes", token=finance)
    assert refused.exit_code == 3
    reopened = platform.json(
        "billing",
        "reopen",
        previous,
        "--reason",
        "Price corrected",
        "--yes",
        token=platform.tokens["operator"],
    )
    assert reopened["closed_digest"] == closed["digest"]
    history = platform.json("billing", "closings", previous, token=finance)
    assert [h["reopen_reason"] for h in history] == ["Price corrected"]
    assert platform.run("billing", "close", previous, "--yes", token=admin).exit_code == 3
    assert platform.run("billing", "report", "2025-13", token=finance).exit_code == 2
