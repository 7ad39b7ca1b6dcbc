"""A statement for people: `cityctl billing export --format pdf` and its API route, read back.

Gent runs an instance; the PDF of last month's (draft) statement is rendered, its text
extracted with pypdf and compared with the statement JSON of the API.
"""

from __future__ import annotations

import io
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from controlplane.billing.exports import share_decimal
from tests.cli.billing_world import last_month, new_token, open_platform, run_keycloak_since_40_days
from tests.cli.conftest import Platform, municipalities_csv


def _months_to(month: str) -> list[str]:
    year, mon = map(int, month.split("-"))
    index = year * 12 + mon - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - 11, index + 1)]


def _text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture(scope="module")
def world(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    operator = open_platform(
        platform, municipalities_csv(tmp_path_factory.mktemp("towns"), ("Gent", "Aalst"))
    )
    viewer = new_token(platform, operator, "gent-admin", "tenant-admin", "gent")
    run_keycloak_since_40_days(platform, viewer)
    finance = new_token(platform, operator, "finance", "finance")
    answer = httpx.post(
        f"{platform.url}/api/v1/billing/pools",
        headers={"Authorization": f"Bearer {finance}"},
        json={
            "name": "platform-base",
            "kind": "platform",
            "monthly_amount": "1000.00",
            "key": "mixed",
            "equal_percent": "30",
            "effective_from": last_month() + "-01",
        },
    )
    assert answer.status_code == 201, answer.text
    return {"finance": finance, "gent": viewer}


def test_pdf_through_cityctl_holds_the_statement_of_the_api(
    platform: Platform, world: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    month = last_month()
    result = platform.ok("billing", "export", month, "--format", "pdf", token=world["finance"])
    written = sorted(Path(p).name for p in result.stdout.split())
    # One PDF per tenant of the statement set; a draft's name says so.
    document = httpx.get(
        f"{platform.url}/api/v1/billing/periods/{month}/statements",
        headers={"Authorization": f"Bearer {world['finance']}"},
    ).json()
    slugs = sorted(s["tenant"]["slug"] for s in document["statements"])
    assert "gent" in slugs
    assert written == [f"statement-{slug}-{month}-draft.pdf" for slug in slugs]
    text = _text((tmp_path / f"statement-gent-{month}-draft.pdf").read_bytes())
    statement = httpx.get(
        f"{platform.url}/api/v1/billing/periods/{month}/statements/gent",
        headers={"Authorization": f"Bearer {world['finance']}"},
    ).json()
    assert statement["tenant"]["name"] in text
    assert month in text
    assert "Status: draft" in text
    pools = 0
    for line in statement["lines"]:
        assert line["amount"] in text
        if line["service"]:
            assert line["service"] in text
        if line["pool"]:
            pools += 1
            assert line["pool"] in text
            share = share_decimal(Fraction(line["exact_share"]))
            assert f"{share:f}" in text
    assert pools >= 1
    assert "mixed 30/70 (30 % equal, 70 % by inhabitants)" in text
    assert Decimal(statement["totals"]["total"]) > 0
    assert statement["totals"]["total"] in text
    for label in _months_to(month):
        assert label in text
    assert "no data" in text
    assert "Source: Statbel, CC BY 4.0" in text


def test_pdf_in_dutch_for_one_tenant(
    platform: Platform, world: dict[str, str], tmp_path: Path
) -> None:
    month = last_month()
    target = tmp_path / "gent.pdf"
    platform.ok(
        "billing", "export", month, "--format", "pdf", "--tenant", "gent", "--lang", "nl",
        "--file", str(target), token=world["gent"],
    )  # fmt: skip
    text = _text(target.read_bytes())
    for word in ("Afrekening", "Gemeente", "Periode", "ontwerp", "Verdeelsleutel", "Totaal"):
        assert word in text, word
    assert "gemengd 30/70" in text
    assert "Bron: Statbel, CC BY 4.0" in text


def test_a_tenant_cannot_fetch_another_tenants_pdf(
    platform: Platform, world: dict[str, str]
) -> None:
    month = last_month()
    base = f"{platform.url}/api/v1/billing/periods/{month}/statements"
    headers = {"Authorization": f"Bearer {world['gent']}"}
    own = httpx.get(f"{base}/gent/pdf", headers=headers)
    assert own.status_code == 200, own.text
    assert own.headers["content-type"] == "application/pdf"
    assert f'filename="statement-gent-{month}-draft.pdf"' in own.headers["content-disposition"]
    other = httpx.get(f"{base}/aalst/pdf", headers=headers)
    assert other.status_code == 404
    assert b"%PDF" not in other.content
