"""VAT rules with `cityctl billing vat` against a running API.

Finance sets, lists and removes rules for a plan, a pool and a service; bad subjects, unknown
plans, impossible rates and exemptions without a reason are refused with what is wrong; a
tenant role reads but cannot change them; an invoice issued after `set` carries the rule, and
changing the rule afterwards does not change the issued invoice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from tests.cli.billing_world import last_month, new_token, open_platform, started_keycloak
from tests.cli.conftest import Platform, municipalities_csv


@pytest.fixture(scope="module")
def tokens(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = open_platform(
        platform, municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent",))
    )
    started_keycloak(platform, "gent", datetime.now(UTC) - timedelta(days=70))
    return {
        "operator": operator,
        "finance": new_token(platform, operator, "fin", "finance"),
        "viewer": new_token(platform, operator, "gent-v", "tenant-viewer", "gent"),
    }


def test_set_list_and_remove(platform: Platform, tokens: dict[str, str]) -> None:
    fin = tokens["finance"]
    rule = platform.json("billing", "vat", "set", "plan:keycloak/small", "--rate", "6", token=fin)
    assert (rule["subject"], rule["rate"], rule["category"]) == ("plan:keycloak/small", "6.00", "S")
    exempt = platform.json(
        "billing",
        "vat",
        "set",
        "service:keycloak",
        "--exempt",
        "VATEX-EU-132",
        "--reason",
        "Public authority, article 13",
        token=fin,
    )
    assert (exempt["rate"], exempt["category"], exempt["exemption_code"]) == (
        "0.00",
        "E",
        "VATEX-EU-132",
    )
    assert exempt["exemption_reason"] == "Public authority, article 13"
    pool = platform.json("billing", "vat", "set", "pool:keycloak-shared", "--rate", "21", token=fin)
    assert pool["rate"] == "21.00"
    # Setting again replaces the rule.
    platform.ok("billing", "vat", "set", "pool:keycloak-shared", "--rate", "12.5", token=fin)

    listed = platform.json("billing", "vat", "list", token=tokens["viewer"])
    assert [(r["subject"], r["rate"]) for r in listed] == [
        ("plan:keycloak/small", "6.00"),
        ("pool:keycloak-shared", "12.50"),
        ("service:keycloak", "0.00"),
    ]
    table = platform.ok("billing", "vat", "list", token=fin)
    assert "VATEX-EU-132" in table.stdout
    assert "12.50" in table.stdout

    removed = platform.ok("billing", "vat", "remove", "service:keycloak", token=fin)
    assert "removed" in removed.stderr
    again = platform.ok("billing", "vat", "remove", "service:keycloak", token=fin)
    assert "no VAT rule" in again.stderr
    platform.ok("billing", "vat", "remove", "pool:keycloak-shared", token=tokens["operator"])
    listed = platform.json("billing", "vat", "list", token=fin)
    assert [r["subject"] for r in listed] == ["plan:keycloak/small"]
    platform.ok("billing", "vat", "remove", "plan:keycloak/small", token=fin)

    with Session(platform.engine) as session:
        actions = session.exec(
            select(AuditEvent.action).where(col(AuditEvent.action).like("billing.vat_rule.%"))
        ).all()
    # Four sets and three removals; the idempotent second removal changed nothing.
    assert sorted(actions) == ["billing.vat_rule.remove"] * 3 + ["billing.vat_rule.set"] * 4


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("plan:keycloak", "--rate", "21"), "plan:<service>/<plan>"),
        (("Service:keycloak", "--rate", "21"), "not a VAT rule subject"),
        (("plan:keycloak/huge", "--rate", "21"), "huge"),
        (("service:nosuch", "--rate", "21"), "nosuch"),
        (("pool:nosuch", "--rate", "21"), "nosuch"),
        (("service:keycloak", "--rate", "101"), "100"),
        (("service:keycloak", "--rate", "6.125"), "decimal"),
        (("service:keycloak", "--exempt", "VATEX-EU-132"), "reason"),
        (("service:keycloak", "--exempt", "VATEX-XX-1", "--reason", "x"), "VATEX-EU-O"),
        (("service:keycloak", "--rate", "6", "--exempt", "VATEX-EU-O"), "--rate or --exempt"),
        (("service:keycloak",), "--rate or --exempt"),
    ],
)
def test_refusals_say_what_is_wrong(
    platform: Platform, tokens: dict[str, str], args: tuple[str, ...], names: str
) -> None:
    result = platform.run("billing", "vat", "set", *args, token=tokens["finance"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert names in result.stderr
    assert platform.json("billing", "vat", "list", token=tokens["finance"]) == []


def test_tenant_roles_read_but_do_not_change(platform: Platform, tokens: dict[str, str]) -> None:
    viewer = tokens["viewer"]
    assert platform.run("billing", "vat", "list", token=viewer).exit_code == 0
    refused = platform.run("billing", "vat", "set", "service:keycloak", "--rate", "6", token=viewer)
    assert refused.exit_code == 3
    assert "tenant-viewer may not change" in refused.stderr
    assert platform.run("billing", "vat", "remove", "service:keycloak", token=viewer).exit_code == 3


def test_invoice_issued_after_set_uses_the_rule_and_stays_as_issued(
    platform: Platform, tokens: dict[str, str]
) -> None:
    fin = tokens["finance"]
    platform.ok("billing", "vat", "set", "plan:keycloak/small", "--rate", "6", token=fin)
    month = last_month()
    platform.ok("billing", "close", month, "--yes", token=fin)
    (listed,) = platform.json("billing", "invoices", "--period", month, token=fin)
    invoice = platform.json("billing", "invoice", listed["number"], token=fin)
    plan_lines = [line for line in invoice["lines"] if line.get("plan") == "small"]
    assert plan_lines
    assert {(line["vat"]["category"], line["vat"]["rate"]) for line in plan_lines} == {
        ("S", "6.00")
    }

    # A rule changed after the close does not touch the issued invoice.
    platform.ok("billing", "vat", "set", "plan:keycloak/small", "--rate", "21", token=fin)
    assert platform.json("billing", "invoice", listed["number"], token=fin) == invoice
