"""Robust statements through cityctl against a real API (issue 16 item 2).

Gent and Aalst each run a Keycloak instance all last month; a finance pool shares a licence
by inhabitants. Aalst loses its inhabitants: every statement is still produced, Aalst's line is
flagged, and Gent's admin never reads Aalst's name. Leaving a tenant without inhabitants, or
defining such a pool over one, is refused up front with the fix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import Session, select, update

from controlplane.auth.models import Role
from controlplane.provisioning.models import UsageEvent
from controlplane.tenants.models import Tenant
from tests.cli.conftest import Platform, municipalities_csv

FLAG = "incomplete: inhabitants missing"


def _last_month() -> str:
    first = datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _this_month_first() -> str:
    return datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1).isoformat()


def _last_month_first() -> str:
    return f"{_last_month()}-01"


def _admin(platform: Platform, operator: str, tenant: str) -> str:
    return platform.ok(
        "token",
        "create",
        "--name",
        f"{tenant}-admin",
        "--role",
        "tenant-admin",
        "--tenant",
        tenant,
        token=operator,
    ).stdout.strip()


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = platform.issue_token(Role.OPERATOR, "bootstrap-operator")
    platform.ok("catalog", "publish", token=operator)
    towns = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent", "Aalst"))
    platform.ok("tenant", "import", str(towns), token=operator)
    tokens = {"operator": operator}
    for tenant in ("gent", "aalst"):
        tokens[tenant] = _admin(platform, operator, tenant)
        platform.ok(
            "instance",
            "create",
            "loket",
            "--service",
            "keycloak",
            "--version",
            "25.0.6",
            "--plan",
            "small",
            "--set",
            f"admin_username={tenant}admin",
            "--wait",
            "--timeout",
            "60",
            token=tokens[tenant],
        )
    # Both instances have run since 40 days ago: all of last month.
    with Session(platform.engine) as session:
        session.exec(update(UsageEvent).values(at=datetime.now(UTC) - timedelta(days=40)))  # type: ignore[call-overload]
        session.commit()
    tokens["finance"] = platform.json(
        "token", "create", "--name", "finance", "--role", "finance", token=operator
    )["token"]
    answer = _post_pool(platform, tokens["finance"], "keycloak-licence", _last_month_first())
    assert answer.status_code == 201, answer.text
    return tokens


def _post_pool(platform: Platform, token: str, name: str, effective_from: str) -> httpx.Response:
    return httpx.post(
        f"{platform.url}/api/v1/billing/pools",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "name": name,
            "kind": "service",
            "service": "keycloak",
            "monthly_amount": "1000.00",
            "key": "inhabitants",
            "effective_from": effective_from,
        },
    )


def _drop_inhabitants(platform: Platform, slug: str) -> None:
    # Data that predates the up-front check (or came in by another road).
    with Session(platform.engine) as session:
        row = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
        row.inhabitants = None
        session.add(row)
        session.commit()


def test_leaving_a_tenant_in_an_inhabitants_pool_without_inhabitants_is_refused(
    platform: Platform, world: dict[str, str]
) -> None:
    answer = httpx.patch(
        f"{platform.url}/api/v1/tenants/gent",
        headers={"Authorization": f"Bearer {world['operator']}"},
        json={"inhabitants": None},
    )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "inhabitants_missing"
    assert problem["errors"][0]["location"] == "inhabitants"
    assert "cityctl tenant update gent --inhabitants N" in problem["hint"]
    # The hint's command exists and sets the inhabitants.
    assert "--inhabitants" in platform.ok("tenant", "update", "--help").stdout


def test_a_month_with_a_tenant_without_inhabitants_gives_every_statement(
    platform: Platform, world: dict[str, str]
) -> None:
    _drop_inhabitants(platform, "aalst")
    month = _last_month()
    # Defining another inhabitants pool over Aalst is refused, naming the fix.
    refused = _post_pool(platform, world["finance"], "keycloak-support", _this_month_first())
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "cost_pool_invalid"
    assert "cityctl tenant update aalst --inhabitants N" in refused.json()["hint"]

    # Finance: both statements; Gent pays the licence, Aalst's line is flagged.
    document = platform.json("billing", "report", month, token=world["finance"])
    by_tenant = {s["tenant"]["slug"]: s for s in document["statements"]}
    assert set(by_tenant) == {"gent", "aalst"}
    assert by_tenant["aalst"]["flags"] == [f"{FLAG} (pool keycloak-licence)"]
    (gent_licence,) = [x for x in by_tenant["gent"]["lines"] if x["pool"] == "keycloak-licence"]
    assert gent_licence["amount"] == "1000.00"
    table = platform.ok("billing", "report", month, token=world["finance"])
    assert f"aalst: {FLAG}" in table.stderr

    # Gent's admin: its statement, in JSON and as a table, never Aalst's name.
    for args in (("-o", "json"), ("--tenant", "gent"), ()):
        seen = platform.ok("billing", "report", month, *args, token=world["gent"])
        assert "aalst" not in (seen.stdout + seen.stderr).lower()
    mine = json.loads(
        platform.ok("billing", "report", month, "-o", "json", token=world["gent"]).stdout
    )
    assert [s["tenant"]["slug"] for s in mine["statements"]] == ["gent"]

    # Aalst's admin sees its own flag.
    own = platform.ok("billing", "report", month, "--tenant", "aalst", token=world["aalst"])
    assert FLAG in own.stderr
    assert "gent" not in (own.stdout + own.stderr).lower()
