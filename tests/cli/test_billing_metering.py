"""Unit rates and usage imports with `cityctl billing rate` and `billing usage` against an API.

Finance sets rates, lists them (a tenant viewer too), imports a usage file twice (the second
time changes nothing), and the month's report carries the rated usage lines; a tenant role
cannot set rates and a bad record is refused naming its index.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli.billing_world import new_token, open_platform, started_keycloak
from tests.cli.conftest import Platform, municipalities_csv


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = open_platform(
        platform, municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    )
    instance_id = started_keycloak(platform, "gent", datetime(2024, 3, 1, tzinfo=UTC))
    return {
        "finance": new_token(platform, operator, "fin", "finance"),
        "viewer": new_token(platform, operator, "v", "tenant-viewer", "gent"),
        "instance": instance_id,
    }


def _record(instance: str, quantity: str, tenant: str = "gent") -> dict[str, Any]:
    return {
        "tenant": tenant,
        "instance": instance,
        "measure": "backup_gib_months",
        "from": "2024-04-01T00:00:00+02:00",
        "to": "2024-05-01T00:00:00+02:00",
        "quantity": quantity,
    }


def test_rates_usage_import_and_the_report(
    platform: Platform, world: dict[str, str], tmp_path: Path
) -> None:
    fin = world["finance"]
    rate = platform.json(
        "billing",
        "rate",
        "set",
        "backup_gib_months",
        "0.05",
        "--from",
        "2024-01-01",
        "--unit",
        "GiB-month",
        token=fin,
    )
    assert (rate["measure"], rate["rate"], rate["unit"], rate["rule"]) == (
        "backup_gib_months",
        "0.05",
        "GiB-month",
        "measured",
    )
    table = platform.ok(
        "billing",
        "rate",
        "set",
        "cpu_core_hours",
        "0.031",
        "--from",
        "2024-01-01",
        "--rule",
        "max",
        token=fin,
    )
    assert "0.031 EUR per core-hour (max)" in table.stderr
    listed = platform.json("billing", "rate", "list", token=world["viewer"])
    assert [(r["measure"], r["rate"]) for r in listed] == [
        ("backup_gib_months", "0.05"),
        ("cpu_core_hours", "0.031"),
    ]

    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps([_record(world["instance"], "33.3")]), encoding="utf-8")
    first = platform.ok("billing", "usage", "import", str(usage), token=fin)
    assert "1 records imported" in first.stderr
    again = platform.ok("billing", "usage", "import", str(usage), token=fin)
    assert "already imported, nothing changed" in again.stderr

    report = platform.json("billing", "report", "2024-04", token=fin)
    statements = report["statements"] if isinstance(report, dict) else report
    lines = [
        (line["measure"], line["quantity"], line["amount"])
        for s in statements
        for line in s["lines"]
        if line["kind"] == "usage" and line["measure"] == "backup_gib_months"
    ]
    # 33.3 GiB-months x 0.05 = 1.665 -> 1.67 (half away from zero)
    assert lines == [("backup_gib_months", "33.300000", "1.67")]


def test_refusals(platform: Platform, world: dict[str, str], tmp_path: Path) -> None:
    denied = platform.run(
        "billing",
        "rate",
        "set",
        "memory_gib_hours",
        "0.0045",
        "--from",
        "2024-01-01",
        token=world["viewer"],
    )
    assert denied.exit_code != 0
    bad = tmp_path / "bad.json"
    records = [_record(world["instance"], "1"), _record(world["instance"], "1", tenant="nowhere")]
    bad.write_text(json.dumps({"batch": "bad-1", "records": records}), encoding="utf-8")
    refused = platform.run("billing", "usage", "import", str(bad), token=world["finance"])
    assert refused.exit_code == 2, (refused.stdout, refused.stderr)
    assert "records[1]" in refused.stderr
    assert "nowhere" in refused.stderr
