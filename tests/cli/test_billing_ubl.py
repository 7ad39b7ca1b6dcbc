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

import pytest
from lxml import etree

from controlplane.settings import get_settings
from tests.billing.peppol import fatal, validate
from tests.cli.billing_world import (
    invoice_towns,
    last_month,
    new_token,
    open_platform,
    started_keycloak,
)
from tests.cli.conftest import Platform

SUPPLIER = {
    "NAME": "City Platform cv",
    "ENTERPRISE_NUMBER": "0789.123.407",
    "VAT_NUMBER": "BE0789123407",
    "STREET": "Kortrijksesteenweg 1085",
    "POSTAL_CODE": "9051",
    "CITY": "Gent",
    "IBAN": "BE08 0682 0523 1213",
}


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
    operator = open_platform(platform, invoice_towns(tmp_path_factory.mktemp("towns")))
    for slug in ("gent", "aalst"):
        started_keycloak(platform, slug, datetime.now(UTC) - timedelta(days=70))
    return {"operator": operator, "finance": new_token(platform, operator, "fin", "finance")}


def _root(path: Path) -> str:
    return etree.QName(etree.parse(str(path)).getroot()).localname


def test_ubl_export_of_a_month(
    platform: Platform,
    tokens: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    month = last_month()
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
