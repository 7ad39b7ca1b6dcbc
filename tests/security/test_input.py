"""Bad input is refused where it enters (issue 13, items 6, 7, 10 and 11).

- Names and other validated strings are matched whole: a trailing newline or any other
  control character is a 422 naming the field, and nothing is created (``^…$`` with
  ``re.match`` let ``web\\n`` through: ``$`` matches before a final newline).
- Finance exports never carry a live formula from a tenant's name.
- An upgrade range is read by one implementation; a bad one is a 422, never a 500.
- A whole-country tenant import fits PostgreSQL's bind-parameter limit.
- ``cityctl login`` leaves a 0600 config file, whatever was lying around.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, func, insert, text
from sqlmodel import Session, select

from controlplane.auth.tokens import check_token_form, token_prefix
from controlplane.billing.exports import export, read_csv
from controlplane.billing.periods import Period
from controlplane.catalog import models as catalog_models
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import publish_release
from controlplane.catalog.validation import check_parameters, quantity
from controlplane.catalog.versions import parse_range
from controlplane.errors import ControlPlaneError
from controlplane.rendering.errors import ParameterInvalid
from controlplane.rendering.parameters import ParameterValidators, resolve
from controlplane.tenants.models import Tenant
from tests.factories import demo_release
from tests.security.conftest import World

CONTROL = ["\n", "\r", "\t", "\x00", "\x0b", "\u2028", "\x85"]
CONTROL_IDS = ["LF", "CR", "TAB", "NUL", "VT", "LS", "NEL"]
INST = "/api/v1/tenants/gent/instances"
# What a refused request must not change (tokens: their rows, not their last use).
DUMPS = {
    t: f"SELECT * FROM {t}"
    for t in ("tenants", "instances", "reconcile_requests", "published_versions", "targets")
} | {
    "api_tokens": "SELECT id, name, role FROM api_tokens",
    "fleet_plans": "SELECT * FROM fleet_plans",
    "billing_prices": "SELECT * FROM billing_prices",
}


def _dump(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as c:
        return {t: sorted(str(r) for r in c.execute(text(q))) for t, q in DUMPS.items()}


# (name, method, path, body builder taking the bad suffix, the field the answer must name)
API_CASES: list[tuple[str, str, str, Any, str]] = [
    (
        "tenant slug",
        "POST",
        "/api/v1/tenants",
        lambda c: {"name": "Nieuw", "nis_code": "12345", "slug": "nieuw" + c},
        "slug",
    ),
    (
        "tenant nis_code",
        "POST",
        "/api/v1/tenants",
        lambda c: {"name": "Nieuw", "nis_code": "12345" + c, "slug": "nieuw"},
        "nis_code",
    ),
    (
        "instance name",
        "POST",
        INST,
        lambda c: {"name": "web" + c, "service": "demo", "plan": "small"},
        "name",
    ),
    (
        "instance service",
        "POST",
        INST,
        lambda c: {"name": "web", "service": "demo" + c, "plan": "small"},
        "service",
    ),
    (
        "instance plan",
        "POST",
        INST,
        lambda c: {"name": "web", "service": "demo", "plan": "small" + c},
        "plan",
    ),
    (
        "target name",
        "POST",
        "/api/v1/targets",
        lambda c: {"name": "git2" + c, "config": {"kind": "gitops", "path": "/srv/git2"}},
        "name",
    ),
    (
        "token tenant",
        "POST",
        "/api/v1/tokens",
        lambda c: {"name": "ci", "role": "tenant-admin", "tenant": "gent" + c},
        "tenant",
    ),
    (
        "token name",
        "POST",
        "/api/v1/tokens",
        lambda c: {"name": "ci" + c, "role": "finance"},
        "name",
    ),
    (
        "price service",
        "POST",
        "/api/v1/billing/prices",
        lambda c: {
            "service": "demo" + c,
            "plan": "small",
            "monthly_price": "1.00",
            "effective_from": "2030-01-01",
        },
        "service",
    ),
    (
        "fleet from",
        "POST",
        "/api/v1/fleet/plans",
        lambda c: {"service": "demo", "from": ">=1.0.0" + c, "to": "1.1.0"},
        "from",
    ),
    (
        "fleet tenants",
        "POST",
        "/api/v1/fleet/plans",
        lambda c: {"service": "demo", "from": ">=1.0.0", "to": "1.1.0", "tenants": ["gent" + c]},
        "tenants[0]",
    ),
    (
        "fleet to",
        "POST",
        "/api/v1/fleet/plans",
        lambda c: {"service": "demo", "from": ">=1.0.0", "to": "1.1.0" + c},
        "to",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "field"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_control_characters_in_names_are_refused_naming_the_field(
    client: TestClient,
    world: World,
    engine: Engine,
    case: str,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    before = _dump(engine)
    for char in CONTROL:
        r = client.request(method, path, json=body(char), headers=world.auth("operator"))
        assert r.status_code == 422, (case, char, r.status_code, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["title"]
        assert problem["detail"]
        errors = problem.get("errors", [])
        if char == "\x00":
            # RequestBody refuses a NUL anywhere in the body first; its message names the path.
            assert any(str(e).find(field.split("[")[0]) >= 0 for e in errors), problem
        else:
            assert field in [e["location"] for e in errors], (char, problem)
    assert _dump(engine) == before


def test_a_billing_period_with_a_control_character_is_refused(
    client: TestClient, world: World
) -> None:
    for char in CONTROL:
        period = quote("2024-03" + char, safe="")
        r = client.get(
            f"/api/v1/billing/periods/{period}/statements",
            headers=world.auth("finance"),
        )
        assert r.status_code == 422, (char, r.text)
        assert "period" in json.dumps(r.json())


# -- the validators themselves ------------------------------------------------------------

TOKEN = "cp_0123456789ab_" + "A" * 43


def _refused(check: Any, value: str) -> bool:
    try:
        outcome = check(value)
    except (ControlPlaneError, ValueError, ValidationError):
        return True
    return outcome in (False, None)


def _pydantic(pattern_type: Any) -> Any:
    return TypeAdapter(pattern_type).validate_python


UNIT_VALIDATORS: dict[str, tuple[Any, str]] = {
    # name: (a check that raises or answers False/None on a bad value, a valid value)
    "token form": (check_token_form, TOKEN),
    "token prefix": (token_prefix, TOKEN),
    "billing period": (Period.parse, "2024-03"),
    "catalogue quantity": (quantity, "512Mi"),
    "version range": (parse_range, ">=24.0.0,<25.0.0"),
    "catalogue DnsLabel": (_pydantic(catalog_models.DnsLabel), "gent"),
    "catalogue SemVer": (_pydantic(catalog_models.SemVer), "25.0.6"),
    "catalogue Quantity": (_pydantic(catalog_models.Quantity), "1Gi"),
    "parameter name": (
        lambda name: (
            not list(check_parameters({"type": "object", "properties": {name: {"type": "string"}}}))
        ),
        "hostname",
    ),
}


def _owned_elsewhere() -> dict[str, tuple[Any, str]]:
    # Namespaces, tenant slugs and instance names are made injective by the names work of
    # issue 13; they must full-match too. (Imported lazily: their modules are in flux.)
    from controlplane.provisioning import admission
    from controlplane.tenants import services

    gent = Tenant(slug="gent", name="Gent", nis_code="44021")
    checks: dict[str, tuple[Any, str]] = {
        "tenant slug": (services.is_slug, "gent"),
        "instance name": (lambda n: admission.check_name(gent, n) or True, "web"),
    }
    return checks


def test_the_unit_validators_match_whole_values() -> None:
    checks = {**UNIT_VALIDATORS, **_owned_elsewhere()}
    for name, (check, good) in checks.items():
        assert not _refused(check, good), f"{name} refuses its valid example {good!r}"
        for char in CONTROL:
            for bad in (good + char, char + good):
                assert _refused(check, bad), f"{name} accepts {bad!r}"


def test_cityctl_refuses_a_billing_month_with_a_newline() -> None:
    from cli.commands.billing import _period
    from cli.errors import CliError

    with pytest.raises(CliError):
        _period("2025-01\n")


@pytest.mark.parametrize("char", CONTROL, ids=CONTROL_IDS)
def test_a_string_parameter_pattern_matches_the_whole_value(char: str) -> None:
    # jsonschema-rs uses ECMA-262 semantics: ``$`` is the end of the input, never "before a
    # final newline" (Python's ``re`` and the pure-Python jsonschema differ here).
    ckan = load_catalog(Path("catalog")).definition("ckan")
    validators = ParameterValidators()
    hostname = "data.gent.be"
    schema = ckan.parameters
    host_keys = [k for k, v in schema["properties"].items() if "pattern" in v]
    assert host_keys, "ckan declares a pattern-checked parameter"
    key = host_keys[0]
    with pytest.raises(ParameterInvalid) as refused:
        resolve(validators, schema, {key: hostname + char})
    assert any(key in e.location for e in refused.value.errors)


# -- formula injection in finance exports (item 7) ------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "+1+1", "-2+3", "\t=1", "\r=1"]


def _poisoned() -> Any:
    from tests.billing.test_worked_example import worked_example

    result = worked_example()
    statements = []
    for index, statement in enumerate(result.statements):
        tenant = dataclasses.replace(statement.tenant, name=FORMULAS[index % len(FORMULAS)])
        lines = list(statement.lines)
        if index == 0:
            lines[0] = dataclasses.replace(lines[0], amount=Decimal("-12.50"))
        statements.append(dataclasses.replace(statement, tenant=tenant, lines=tuple(lines)))
    return dataclasses.replace(result, statements=tuple(statements))


def test_xlsx_export_has_no_formula_and_keeps_numbers_numeric() -> None:
    workbook = load_workbook(io.BytesIO(export(_poisoned(), "xlsx")))
    names: set[str] = set()
    amounts: list[Any] = []
    for sheet in workbook.worksheets:
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
            if sheet.title == "Lines" and row[0].value and row[0].value != "Total":
                names.add(row[header.index("tenant_name")].value)
                amounts.append(row[header.index("amount")].value)
    assert names == set(FORMULAS[:3])  # stored as the text itself, no prefix in XLSX
    assert -12.5 in amounts
    assert all(isinstance(a, int | float) for a in amounts)


@pytest.mark.parametrize("fmt", ["csv", "csv-be"])
def test_csv_export_neutralises_formulas_in_text_only(fmt: str) -> None:
    data = export(_poisoned(), fmt)
    delimiter = ";" if fmt == "csv-be" else ","
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))
    for row in rows:
        for column, value in row.items():
            if column not in ("quantity", "unit_price", "amount"):
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (column, value)
    assert {r["tenant_name"] for r in rows} == {"'" + f for f in FORMULAS[:3]}
    assert "-12.50" in {r["amount"] for r in rows} or "-12,50" in {r["amount"] for r in rows}
    # read_csv gives the names back exactly, and the credit as a negative number.
    back = read_csv(data, belgian=fmt == "csv-be")
    assert {r["tenant_name"] for r in back} == set(FORMULAS[:3])
    assert Decimal("-12.50") in {r["amount"] for r in back}


# -- one version rule; a bad range is a 422 (item 10) ----------------------------------------


def test_partial_versions_in_a_range_upgrade_and_a_bad_range_is_a_422(
    client: TestClient, world: World, engine: Engine
) -> None:
    h = world.auth("operator")
    assert (
        client.post(
            INST,
            json={"name": "web", "version": "1.0.0", "plan": "small", "service": "demo"},
            headers=h,
        ).status_code
        == 202
    )
    with Session(engine) as s:
        # ">=1,<1.2" was a 500 in admission (semver's match() wants one full comparator).
        publish_release(s, demo_release("1.2.0", upgrade_from=">=1,<1.2"))
        # Published before validation refused such ranges: still a clear 422, not a 500.
        publish_release(s, demo_release("1.3.0", upgrade_from=">=1.0.0,,<2"))
        s.commit()
    r = client.patch(f"{INST}/web", json={"version": "1.2.0"}, headers=h)
    assert r.status_code == 202, r.text
    before = _dump(engine)
    bad = client.patch(f"{INST}/web", json={"version": "1.3.0"}, headers=h)
    assert bad.status_code == 422, bad.text
    assert [e["location"] for e in bad.json()["errors"]] == ["version"]
    assert _dump(engine) == before


# -- a whole-country import on PostgreSQL (item 11) ------------------------------------------

#: More NIS codes than PostgreSQL's 65,535 bind parameters in one statement.
IMPORT_ROWS = 66_000


def test_an_import_beyond_the_bind_parameter_limit_succeeds(
    client: TestClient, world: World, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the bind-parameter limit is PostgreSQL's")
    # 5-digit NIS codes from 20000 up (the world's tenants use 44021 and 31005: skip those).
    codes = [c for c in range(20_000, 99_999) if c not in (44021, 31005)][:IMPORT_ROWS]
    lines = ["nis_code,name_nl,province,population,population_year"]
    lines += [f"{code},Synthetisch {code},Testprovincie,{1000 + code % 97},2024" for code in codes]
    # The tenants exist already (written in bulk: the ORM would take minutes), so that the
    # import's lookup of every NIS code, the statement that hit the limit, is what runs.
    seeded = [
        Tenant(
            slug=f"synthetisch-{code}",
            name=f"Synthetisch {code}",
            nis_code=str(code),
            inhabitants=1000 + code % 97,
            inhabitants_year=2024,
        ).model_dump()
        for code in codes
    ]
    with engine.begin() as connection:
        connection.execute(insert(Tenant.__table__), seeded)  # type: ignore[arg-type]
    h = {**world.auth("operator"), "Content-Type": "text/csv"}
    body = ("\n".join(lines) + "\n").encode()
    r = client.post("/api/v1/tenants/import", content=body, headers=h)
    assert r.status_code == 200, r.text[:2000]
    summary = r.json()
    assert (len(summary["created"]), len(summary["unchanged"])) == (0, IMPORT_ROWS)
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Tenant)).one() == IMPORT_ROWS + 2


# -- cityctl's config file is 0600 (item 11) -------------------------------------------------


@pytest.mark.parametrize("leftover", ["stale temp file", "existing 0644 config"])
def test_cityctl_config_is_always_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leftover: str
) -> None:
    from cli.config import Config, Context, save_config

    path = tmp_path / "config.json"
    monkeypatch.setenv("CITYCTL_CONFIG", str(path))
    old_umask = os.umask(0o022)
    try:
        stale = path.with_suffix(".tmp")
        target = stale if leftover == "stale temp file" else path
        target.write_text("{}")
        target.chmod(0o644)
        saved = save_config(
            Config(current_context="x", contexts={"x": Context(server="http://x", token="t")})
        )
    finally:
        os.umask(old_umask)
    assert saved == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["contexts"]["x"]["token"] == "t"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("config.json", "config.tmp")]
    assert leftovers == []
