"""Invoices with `cityctl` against a running API: master data in, invoice and credit note out.

The municipality CSV carries the optional invoice columns; gent ran a demo-less instance all of
last month; finance closes last month and reads the invoice; an operator reopens, finance
closes again: a credit note and a new invoice, and the first invoice is still there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from controlplane.auth.models import Role
from controlplane.billing.invoices import is_structured_communication
from controlplane.provisioning.models import UsageEvent, UsageKind
from controlplane.tenants.models import Tenant
from tests.cli.conftest import Platform
from tests.factories import make_instance


def _last_month() -> str:
    first = datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@pytest.fixture(scope="module")
def tokens(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = platform.issue_token(Role.OPERATOR, "bootstrap-operator")
    platform.ok("catalog", "publish", token=operator)
    towns = tmp_path_factory.mktemp("towns") / "municipalities.csv"
    towns.write_text(
        "nis_code,name_nl,province,population,population_year,enterprise_number,street,"
        "postal_code,city\n"
        "44021,Gent,Oost-Vlaanderen,265086,2024,0207.451.227,Botermarkt 1,9000,Gent\n"
        "41002,Aalst,Oost-Vlaanderen,88000,2024,,,,\n",
        encoding="utf-8",
    )
    platform.ok("tenant", "import", str(towns), token=operator)
    with Session(platform.engine) as session:
        gent = session.exec(select(Tenant).where(Tenant.slug == "gent")).one()
        instance = make_instance(session, gent, "loket", service="keycloak", plan="small")
        session.add(
            UsageEvent(
                instance_id=instance.id,
                tenant_id=gent.id,
                service=instance.service,
                plan="small",
                kind=UsageKind.STARTED,
                at=datetime.now(UTC) - timedelta(days=70),
            )
        )
        session.commit()
    finance = platform.json("token", "create", "--name", "fin", "--role", "finance", token=operator)
    viewer = platform.json(
        "token",
        "create",
        "--name",
        "aalst-v",
        "--role",
        "tenant-viewer",
        "--tenant",
        "aalst",
        token=operator,
    )
    return {"operator": operator, "finance": finance["token"], "aalst": viewer["token"]}


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
    month = _last_month()
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
