"""Invoices with `cityctl` against a running API: master data in, invoice and credit note out.

The municipality CSV carries the optional invoice columns; gent ran a demo-less instance all of
last month; finance closes last month and reads the invoice; an operator reopens, finance
closes again: a credit note and a new invoice, and the first invoice is still there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.billing.invoices import is_structured_communication
from tests.cli.billing_world import (
    invoice_towns,
    last_month,
    new_token,
    open_platform,
    started_keycloak,
)
from tests.cli.conftest import Platform


@pytest.fixture(scope="module")
def tokens(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = open_platform(platform, invoice_towns(tmp_path_factory.mktemp("towns")))
    started_keycloak(platform, "gent", datetime.now(UTC) - timedelta(days=70))
    return {
        "operator": operator,
        "finance": new_token(platform, operator, "fin", "finance"),
        "aalst": new_token(platform, operator, "aalst-v", "tenant-viewer", "aalst"),
    }


def test_import_and_update_take_invoice_master_data(
    platform: Platform, tokens: dict[str, str]
) -> None:
    gent = platform.json("tenant", "show", "gent", token=tokens["operator"])
    assert (gent["enterprise_number"], gent["street"], gent["postal_code"], gent["city"]) == (
        "0207451227",
        "Botermarkt 1",
        "9000",
        "Gent",
    )
    updated = platform.json(
        "tenant",
        "update",
        "aalst",
        "--enterprise-number",
        "0207 451 227",
        "--city",
        "Aalst",
        token=tokens["operator"],
    )
    assert (updated["enterprise_number"], updated["city"]) == ("0207451227", "Aalst")
    bad = platform.run(
        "tenant",
        "update",
        "aalst",
        "--enterprise-number",
        "0207.451.228",
        token=tokens["operator"],
    )
    assert bad.exit_code != 0
    assert "check digits" in bad.stderr


def test_close_reopen_close_gives_invoice_credit_note_and_new_invoice(
    platform: Platform, tokens: dict[str, str]
) -> None:
    month = last_month()
    platform.ok("billing", "close", month, "--yes", token=tokens["finance"])
    listed = platform.json("billing", "invoices", "--period", month, token=tokens["finance"])
    # Aalst used nothing (and no pool is shared by all): it gets no invoice.
    assert [(i["tenant"], i["kind"]) for i in listed] == [("gent", "invoice")]
    gent_number = listed[0]["number"]
    first = platform.json("billing", "invoice", gent_number, token=tokens["finance"])
    assert first["lines"][0]["instance_name"] == "loket"
    assert first["customer"]["enterprise_number"] == "0207.451.227"
    assert is_structured_communication(first["payment"]["reference"])
    table = platform.ok("billing", "invoice", gent_number, token=tokens["finance"])
    assert "loket" in table.stdout
    assert first["payment"]["reference"] in table.stderr

    platform.ok(
        "billing", "reopen", month, "--reason", "correction", "--yes", token=tokens["operator"]
    )
    platform.ok("billing", "close", month, "--yes", token=tokens["finance"])
    gent = platform.json("billing", "invoices", "--tenant", "gent", token=tokens["finance"])
    assert [(i["kind"], i["credits"]) for i in gent] == [
        ("invoice", None),
        ("credit_note", gent_number),
        ("invoice", None),
    ]
    numbers = [i["number"] for i in platform.json("billing", "invoices", token=tokens["finance"])]
    assert [int(n) for n in numbers] == [1, 2, 3]
    assert platform.json("billing", "invoice", gent_number, token=tokens["finance"]) == first

    # A tenant viewer sees only its own tenant's documents; gent's invoice does not exist for it.
    assert platform.json("billing", "invoices", token=tokens["aalst"]) == []
    hidden = platform.run("billing", "invoice", gent_number, token=tokens["aalst"])
    assert hidden.exit_code != 0
    assert "no invoice" in hidden.stderr
