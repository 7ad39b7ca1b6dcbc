"""`cityctl catalog show` and the catalogue API say where a service keeps data and whether it
is backed up: Nextcloud's files volume is not, its database is on cloudnative-pg targets."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from controlplane.auth.models import Role
from controlplane.catalog.data import BACKED_UP, NOT_BACKED_UP
from tests.cli.conftest import Platform

SERVICE = "nextcloud"


@pytest.fixture(scope="module")
def operator(platform: Platform) -> str:
    token = platform.issue_token(Role.OPERATOR, "catalog-data-operator")
    platform.ok("catalog", "publish", SERVICE, token=token)
    return token


def _by_name(places: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in places}


def test_the_api_lists_the_data_and_its_backups(platform: Platform, operator: str) -> None:
    headers = {"Authorization": f"Bearer {operator}"}
    service = requests.get(f"{platform.url}/api/v1/catalog/{SERVICE}", headers=headers, timeout=30)
    assert service.status_code == 200, service.text
    places = _by_name(service.json()["data"])
    assert places["html"]["kind"] == "volume"
    assert "the files users upload" in places["html"]["holds"]
    assert places["html"]["backup"] == NOT_BACKED_UP
    assert places["postgres"] == {
        "name": "postgres",
        "kind": "postgresql",
        "holds": "users, shares, file metadata, calendars and contacts",
        "backup": BACKED_UP,
    }
    version = service.json()["versions"][-1]["version"]
    detail = requests.get(
        f"{platform.url}/api/v1/catalog/{SERVICE}/versions/{version}", headers=headers, timeout=30
    )
    assert _by_name(detail.json()["data"]) == places


def test_catalog_show_prints_a_data_section(platform: Platform, operator: str) -> None:
    shown = platform.ok("catalog", "show", SERVICE, token=operator).stdout
    section = shown[shown.index("Data (") :]
    assert "- html (volume): the files users upload" in section
    assert f"  backup: {NOT_BACKED_UP}" in section
    assert "- postgres (postgresql): users, shares" in section
    assert "backed up daily with point-in-time recovery on targets with cloudnative-pg" in section
    # The files volume is the one that is not backed up, the database the one that is.
    html = section[section.index("- html") :]
    assert html.splitlines()[1] == f"  backup: {NOT_BACKED_UP}"
    database = section[section.index("- postgres") :]
    assert database.splitlines()[1] == f"  backup: {BACKED_UP}"
    as_json = platform.json("catalog", "show", SERVICE, token=operator)
    assert _by_name(as_json["data"])["html"]["backup"] == NOT_BACKED_UP
