"""`cityctl billing export --format ubl` against a running API: one Peppol XML per document.

Gent (enterprise number and address imported) and Aalst (neither) each ran a Keycloak all of
last month. An open month has no invoices: the export says to close it first. After the close,
Gent's invoice is written and passes the official CEN and Peppol rule sets; Aalst's is refused
with the `cityctl tenant update` command that fixes it. After a reopen and a second close, the
credit note and the new invoice of Gent are written too, each named by its number.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from sqlmodel import Session, select

from controlplane.auth.models import Role
from controlplane.provisioning.models import UsageEvent, UsageKind
from controlplane.settings import get_settings
from controlplane.tenants.models import Tenant
from tests.billing.peppol import fatal, validate
from tests.cli.conftest import Platform
from tests.factories import make_instance

SUPPLIER = {
    "NAME": "City Platform cv",
    "ENTERPRISE_NUMBER": "0789.123.407",
    "VAT_NUMBER": "BE0789123407",
    "STREET": "Kortrijksesteenweg 1085",
    "POSTAL_CODE": "9051",
    "CITY": "Gent",
    "IBAN": "BE08 0682 0523 1213",
}


def _last_month() -> str:
    first = datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@pytest.fixture(scope="module")
def supplier() -> Iterator[None]:
    """The supplier settings, read by the in-process API when it issues the invoices."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in SUPPLIER.items():
            patch.setenv(f"CONTROLPLANE_SUPPLIER_{key}", value)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tokens(
    platform: Platform, supplier: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
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
        for slug in ("gent", "aalst"):
            tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
            instance = make_instance(session, tenant, "loket", service="keycloak", plan="small")
            session.add(
                UsageEvent(
                    instance_id=instance.id,
                    tenant_id=tenant.id,
                    service=instance.service,
                    plan="small",
                    kind=UsageKind.STARTED,
                    at=datetime.now(UTC) - timedelta(days=70),
                )
            )
        session.commit()
    finance = platform.json("token", "create", "--name", "fin", "--role", "finance", token=operator)
    return {"operator": operator, "finance": finance["token"]}


def _root(path: Path) -> str:
    return etree.QName(etree.parse(str(path)).getroot()).localname


def test_ubl_export_of_a_month(
    platform: Platform,
    tokens: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    month = _last_month()
    finance = tokens["finance"]

    draft = platform.run("billing", "export", "--format", "ubl", "--period", month, token=finance)
    assert draft.exit_code == 5, draft.stderr
    assert f"cityctl billing close {month}" in draft.stderr
    assert "no invoices yet" in draft.stderr

    platform.ok("billing", "close", month, "--yes", token=finance)
    monkeypatch.chdir(tmp_path)
    first = platform.run("billing", "export", "--format", "ubl", "--period", month, token=finance)
    # Aalst (NIS 41002) is invoiced first; it has no enterprise number: refused, named, fixable.
    assert first.exit_code == 2, first.stderr
    assert "cityctl tenant update aalst --enterprise-number" in " ".join(first.stderr.split())
    assert first.stdout.split() == ["invoice-0000000002.xml"]
    written = tmp_path / "invoice-0000000002.xml"
    assert _root(written) == "Invoice"
    assert validate(written.read_bytes()) == []

    platform.ok(
        "billing", "reopen", month, "--reason", "correction", "--yes", token=tokens["operator"]
    )
    platform.ok("billing", "close", month, "--yes", token=finance)
    out = tmp_path / "ubl"
    again = platform.ok(
        "billing",
        "export",
        month,
        "--format",
        "ubl",
        "--tenant",
        "gent",
        "--output-dir",
        str(out),
        token=finance,
    )
    # Per tenant a credit note, then the new invoice: aalst 3 and 4, gent 5 and 6.
    names = ["invoice-0000000002.xml", "credit-note-0000000005.xml", "invoice-0000000006.xml"]
    assert again.stdout.split() == [str(out / name) for name in names]
    assert [_root(out / name) for name in names] == ["Invoice", "CreditNote", "Invoice"]
    for name in names:
        findings = validate((out / name).read_bytes())
        assert fatal(findings) == [], (name, "\n".join(map(str, findings)))
