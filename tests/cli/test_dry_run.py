"""`instance create | update` check on the server first (``?dryRun=All``), then quote.

Through cityctl against a real API on loopback: a refused request shows its error and no
price; ``--dry-run`` shows the rendered objects and the price and keeps nothing (no
instance, no audit event, no idempotency record that a later create would replay).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv

KEYCLOAK = ("--service", "keycloak", "--version", "25.0.6", "--plan", "small")
PRICE = "€ 95.00 per month"


@pytest.fixture(scope="module")
def gent(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """Gent with the catalogue published, and its admin's and finance's tokens."""
    operator = platform.issue_token(Role.OPERATOR, "operator")
    platform.tokens["operator"] = operator
    platform.json("catalog", "publish", token=operator)
    csv_file = municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    platform.json("tenant", "import", str(csv_file), token=operator)
    admin = platform.json(
        "token",
        "create",
        "--name",
        "gent-admin",
        "--role",
        "tenant-admin",
        "--tenant",
        "gent",
        token=operator,
    )
    platform.tokens["admin"] = admin["token"]
    platform.tokens["finance"] = platform.issue_token(Role.FINANCE, "finance")
    return platform


def _instances(platform: Platform) -> list[str]:
    listed = platform.json("instance", "list", token=platform.tokens["admin"])
    return [i["name"] for i in listed]


def _instance_events(platform: Platform) -> list[str]:
    events = platform.json("audit", "list", token=platform.tokens["operator"])
    return [e["resource"] for e in events if e["action"].startswith("instance.")]


def test_a_refused_role_gets_the_error_and_no_price(gent: Platform) -> None:
    refused = gent.run(
        "instance", "create", "login", *KEYCLOAK, "--tenant", "gent", token=gent.tokens["finance"]
    )
    assert refused.exit_code == 3, refused.stderr
    assert "may not" in refused.stderr
    assert "per month" not in refused.stderr
    assert _instances(gent) == []


def test_a_bad_parameter_gets_the_error_and_no_price(gent: Platform) -> None:
    bad = ("--set", "no_such_parameter=1")
    refused = gent.run("instance", "create", "login", *KEYCLOAK, *bad, token=gent.tokens["admin"])
    assert refused.exit_code == 2, refused.stderr
    assert "no_such_parameter" in refused.stderr
    assert "per month" not in refused.stderr
    assert _instances(gent) == []


def test_dry_run_shows_objects_and_price_and_keeps_nothing(gent: Platform) -> None:
    token = gent.tokens["admin"]
    table = gent.run("instance", "create", "login", *KEYCLOAK, "--dry-run", token=token)
    assert table.exit_code == 0, table.stderr
    assert PRICE in table.stderr
    assert "nothing was changed" in table.stderr
    assert "StatefulSet" in table.stdout or "Deployment" in table.stdout, table.stdout
    assert "Secret" in table.stdout

    as_yaml = gent.run(
        "instance", "create", "login", *KEYCLOAK, "--dry-run", "-o", "yaml", token=token
    )
    assert as_yaml.exit_code == 0, as_yaml.stderr
    objects = yaml.safe_load(as_yaml.stdout)
    assert {o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]}
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        values = {**(secret.get("data") or {}), **(secret.get("stringData") or {})}
        assert values, secret
        assert set(values.values()) == {"<redacted>"}, secret

    assert _instances(gent) == []
    assert _instance_events(gent) == []


def test_a_dry_run_answer_is_not_replayed_for_the_same_idempotency_key(gent: Platform) -> None:
    headers = {
        "Authorization": f"Bearer {gent.tokens['admin']}",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    body = {"name": "keyed", "service": "keycloak", "version": "25.0.6", "plan": "small"}
    url = f"{gent.url}/api/v1/tenants/gent/instances"
    with httpx.Client() as client:
        dry = client.post(url, json=body, headers=headers, params={"dryRun": "All"})
        assert dry.status_code == 200, dry.text
        assert dry.json()["objects"]
        real = client.post(url, json=body, headers=headers)
    assert real.status_code == 202, real.text
    assert "Idempotent-Replayed" not in real.headers
    assert "keyed" in _instances(gent)
    deleted = gent.run("instance", "delete", "keyed", "--yes", token=gent.tokens["admin"])
    assert deleted.exit_code == 0, deleted.stderr


def test_create_and_update_check_then_quote_then_change(gent: Platform, tmp_path: Path) -> None:
    token = gent.tokens["admin"]
    created = gent.run("instance", "create", "login", *KEYCLOAK, "-o", "json", token=token)
    assert created.exit_code == 0, created.stderr
    assert PRICE in created.stderr
    assert "login" in _instances(gent)
    assert "instance:gent/login" in _instance_events(gent)

    # An update's dry run quotes the new plan and changes nothing.
    dry = gent.run("instance", "update", "login", "--plan", "medium", "--dry-run", token=token)
    assert dry.exit_code == 0, dry.stderr
    assert "plan medium" in dry.stderr
    assert "per month" in dry.stderr
    shown = gent.json("instance", "show", "login", token=token)
    assert (shown["plan"], shown["generation"]) == ("small", 1)

    refused = gent.run("instance", "update", "login", "--plan", "no-such-plan", token=token)
    assert refused.exit_code == 2, refused.stderr
    assert "per month" not in refused.stderr

    changed = gent.run("instance", "update", "login", "--plan", "medium", "-o", "json", token=token)
    assert changed.exit_code == 0, changed.stderr
    assert "plan medium" in changed.stderr
    shown = gent.json("instance", "show", "login", token=token)
    assert (shown["plan"], shown["generation"]) == ("medium", 2)
