"""Metering through the HTTP API (issue 16): unit rates, usage imports, rated statements.

The worked example on the API world (SQLite and PostgreSQL): in April 2024 (30 days, all in
CEST: 720 hours) gent runs demo/small all month and brugge demo/large from 16 April 00:00 in
Brussels (360 hours). demo/small requests 0.1 core and 128 MiB (0.125 GiB), demo/large three
replicas of that (0.3 core, 0.375 GiB); both have a 1 GiB volume. Every figure is worked out
by hand in the comments, as in tests/billing/test_rated_usage.py, and asserted to the cent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.billing.exports import read_csv
from controlplane.provisioning.models import UsageKind
from tests.api.conftest import World
from tests.billing.test_api_billing import API, PERIOD, _post_pool, _problem, _tenant, _usage
from tests.billing.test_rated_usage import largest_remainder

INHABITANTS = {"gent": 263_703, "brugge": 118_325}
RATES = [
    {"measure": "cpu_core_hours", "rate": "0.031", "rule": "max"},
    {"measure": "memory_gib_hours", "rate": "0.0045"},
    {"measure": "storage_gib_months", "rate": "0.115"},
    {"measure": "backup_gib_months", "rate": "0.05", "unit": "GiB-month"},
]


def _april(tenant: str, instance: str, measure: str, quantity: str) -> dict[str, str]:
    return {
        "tenant": tenant,
        "instance": instance,
        "measure": measure,
        "from": "2024-04-01T00:00:00+02:00",
        "to": "2024-05-01T00:00:00+02:00",
        "quantity": quantity,
    }


@pytest.fixture
def metered(engine: Engine, client: TestClient, world: World) -> dict[str, str]:
    """The example's usage, rates, pools and a usage import; answers the instance ids."""
    with Session(engine) as session:
        gent, brugge = _tenant(session, "gent"), _tenant(session, "brugge")
        gent.inhabitants, brugge.inhabitants = INHABITANTS["gent"], INHABITANTS["brugge"]
        session.add_all([gent, brugge])
        ids = {
            "gent": str(
                _usage(
                    session,
                    gent,
                    "forms",
                    "small",
                    datetime(2024, 3, 1, tzinfo=UTC),
                    UsageKind.STARTED,
                )
            ),
            "brugge": str(
                _usage(
                    session,
                    brugge,
                    "forms",
                    "large",
                    datetime(2024, 4, 15, 22, tzinfo=UTC),
                    UsageKind.STARTED,
                )
            ),
        }
        session.commit()
    for rate in RATES:
        answer = client.post(
            f"{API}/rates",
            json={**rate, "effective_from": "2024-01-01"},
            headers=world.auth("finance"),
        )
        assert answer.status_code == 201, answer.text
    pools = [
        {
            "name": "idle",
            "kind": "platform",
            "monthly_amount": "500.00",
            "key": "usage",
            "usage_measure": "usage_cost",
        },
        {
            "name": "demo-licence",
            "kind": "service",
            "service": "demo",
            "monthly_amount": "1000.00",
            "key": "mixed",
            "equal_percent": "30",
        },
    ]
    for pool in pools:
        answer = _post_pool(client, world, **pool, effective_from="2024-01-01")
        assert answer.status_code == 201, answer.text
    body = {
        "batch": "opencost-2024-04",
        "records": [
            _april("gent", ids["gent"], "cpu_core_hours", "100"),
            _april("brugge", ids["brugge"], "cpu_core_hours", "50"),
            _april("gent", ids["gent"], "backup_gib_months", "33.3"),
        ],
    }
    answer = client.post(f"{API}/usage", json=body, headers=world.auth("finance"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["records"] == 3
    return ids


def _post(client: TestClient, world: World, what: str, body: Any, who: str = "finance") -> Any:
    return client.post(f"{API}/{what}", json=body, headers=world.auth(who))


def _document(client: TestClient, world: World) -> Any:
    answer = client.get(f"{API}/periods/{PERIOD}/statements", headers=world.auth("finance"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _lines(document: Any, kind: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {
        (s["tenant"]["slug"], line.get("measure") or line["pool"]): (
            line["quantity"],
            line["unit_price"],
            line["amount"],
        )
        for s in document["statements"]
        for line in s["lines"]
        if line["kind"] == kind
    }


def test_usage_lines_are_rated_to_the_cent(
    client: TestClient, world: World, metered: dict[str, str]
) -> None:
    usage = {
        k: (Decimal(q), Decimal(p), a)
        for k, (q, p, a) in _lines(_document(client, world), "usage").items()
    }
    assert usage == {
        # gent: 0.1 core x 720 h = 72 requested < 100 measured: max = 100 x 0.031 = 3.10
        ("gent", "cpu_core_hours"): (Decimal(100), Decimal("0.031"), "3.10"),
        # 0.125 GiB x 720 h = 90 x 0.0045 = 0.405 -> 0.41 (half away from zero)
        ("gent", "memory_gib_hours"): (Decimal(90), Decimal("0.0045"), "0.41"),
        # 1 GiB x 1 month x 0.115 = 0.115 -> 0.12
        ("gent", "storage_gib_months"): (Decimal(1), Decimal("0.115"), "0.12"),
        # measured only: 33.3 x 0.05 = 1.665 -> 1.67
        ("gent", "backup_gib_months"): (Decimal("33.3"), Decimal("0.05"), "1.67"),
        # brugge: 0.3 core x 360 h = 108 requested > 50 measured: 108 x 0.031 = 3.348 -> 3.35
        ("brugge", "cpu_core_hours"): (Decimal(108), Decimal("0.031"), "3.35"),
        # 0.375 GiB x 360 h = 135 x 0.0045 = 0.6075 -> 0.61
        ("brugge", "memory_gib_hours"): (Decimal(135), Decimal("0.0045"), "0.61"),
        # 1 GiB x 15/30 month = 0.5 x 0.115 = 0.0575 -> 0.06
        ("brugge", "storage_gib_months"): (Decimal("0.5"), Decimal("0.115"), "0.06"),
    }


def test_idle_and_mixed_pools_to_the_cent(
    client: TestClient, world: World, metered: dict[str, str]
) -> None:
    document = _document(client, world)
    # usage cost in cents: gent 310 + 41 + 12 + 167 = 530; brugge 335 + 61 + 6 = 402.
    # idle 50000 x 530/932 = 28433.476, x 402/932 = 21566.524: the cent left goes to brugge.
    idle = largest_remainder(50000, [("gent", Fraction(530, 932)), ("brugge", Fraction(402, 932))])
    assert idle == {"gent": 28433, "brugge": 21567}
    # licence: 30 % equal, 70 % by inhabitants, prorated by days used (gent 30/30, brugge
    # 15/30: 16 to 30 April).
    f = {"gent": Fraction(1), "brugge": Fraction(1, 2)}
    w = INHABITANTS
    sum_f, sum_wf = sum(f.values()), sum(w[s] * f[s] for s in f)
    exact = {s: Fraction(3, 10) * f[s] / sum_f + Fraction(7, 10) * w[s] * f[s] / sum_wf for s in f}
    assert sum(exact.values()) == 1
    licence = largest_remainder(100000, list(exact.items()))
    # 100000 x 0.3 x 2/3 + 100000 x 0.7 x 263703 / (263703 + 59162.5) = 20000 + 57173.49…
    assert licence == {"gent": 77173, "brugge": 22827}
    pools = {p["name"]: {s["tenant"]: s["amount"] for s in p["shares"]} for p in document["pools"]}
    cents = Decimal("0.01")
    assert pools["idle"] == {s: str(c * cents) for s, c in idle.items()}
    assert pools["demo-licence"] == {s: str(c * cents) for s, c in licence.items()}
    totals = {s["tenant"]["slug"]: s["totals"] for s in document["statements"]}
    # gent: plan fee 10.00, usage 5.30, licence 771.73, idle 284.33 = 1071.36
    assert (totals["gent"]["usage"], totals["gent"]["total"]) == ("5.30", "1071.36")
    # brugge: plan fee 40.00 x 1/2 = 20.00, usage 4.02, licence 228.27, idle 215.67 = 467.96
    assert (totals["brugge"]["usage"], totals["brugge"]["total"]) == ("4.02", "467.96")


def test_close_keeps_the_usage_lines_and_exports_carry_them(
    client: TestClient, world: World, metered: dict[str, str]
) -> None:
    draft = _document(client, world)
    closed = client.post(f"{API}/periods/{PERIOD}/close", headers=world.auth("finance"))
    assert closed.status_code == 201, closed.text
    document = _document(client, world)
    assert document["digest"] == closed.json()["digest"]
    assert _lines(document, "usage") == _lines(draft, "usage")
    export = client.get(
        f"{API}/periods/{PERIOD}/export", params={"format": "csv"}, headers=world.auth("finance")
    )
    assert export.status_code == 200, export.text
    # The export has no measure column (yet): the usage rows carry their units and amounts.
    rows = [r for r in read_csv(export.content) if r["kind"] == "usage"]
    assert {r["unit"] for r in rows} == {"core-hour", "GiB-hour", "GiB-month"}
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(document["totals"]["usage"])
    # Nothing can be dated inside the closed month any more.
    late = {"batch": "late", "records": [_april("gent", metered["gent"], "cpu_core_hours", "1")]}
    body = _problem(
        client.post(f"{API}/usage", json=late, headers=world.auth("finance")), 409, "period_closed"
    )
    assert body["period"] == PERIOD
    rate = {"measure": "cpu_core_hours", "rate": "0.04", "effective_from": "2024-04-10"}
    _problem(
        client.post(f"{API}/rates", json=rate, headers=world.auth("finance")), 409, "period_closed"
    )
    assert _document(client, world)["digest"] == closed.json()["digest"]


def test_a_batch_is_idempotent_by_its_id(
    client: TestClient, world: World, metered: dict[str, str]
) -> None:
    body = {"batch": "b-1", "records": [_april("gent", metered["gent"], "cpu_core_hours", "5")]}
    first = client.post(f"{API}/usage", json=body, headers=world.auth("operator"))
    assert first.status_code == 201, first.text
    again = client.post(f"{API}/usage", json=body, headers=world.auth("finance"))
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    body["records"][0]["quantity"] = "6"
    _problem(
        client.post(f"{API}/usage", json=body, headers=world.auth("finance")),
        409,
        "usage_batch_conflict",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant": "nowhere"}, "tenant"),
        ({"instance": "00000000-0000-0000-0000-000000000001"}, "instance"),
        ({"tenant": "brugge"}, "instance"),
        ({"to": "2024-05-02T00:00:00+02:00"}, "to"),
        ({"quantity": "-1"}, "quantity"),
    ],
)
def test_bad_records_are_refused_naming_their_index(
    client: TestClient,
    world: World,
    metered: dict[str, str],
    change: dict[str, str],
    field: str,
) -> None:
    good = _april("gent", metered["gent"], "cpu_core_hours", "1")
    body = {"batch": "bad", "records": [good, {**good, **change}]}
    problem = _problem(
        client.post(f"{API}/usage", json=body, headers=world.auth("finance")), 422, "usage_invalid"
    )
    assert "records[1]" in problem["detail"]
    assert [e["location"] for e in problem["errors"]] == [f"records.1.{field}"]
    # Nothing of the refused batch was stored: the id is still free.
    body["records"] = [good]
    assert client.post(f"{API}/usage", json=body, headers=world.auth("finance")).status_code == 201


def test_rates_are_listed_for_every_billing_reader(
    client: TestClient, world: World, metered: dict[str, str]
) -> None:
    answer = client.get(f"{API}/rates", headers=world.auth("tenant-viewer"))
    assert answer.status_code == 200, answer.text
    assert [(r["measure"], r["rate"], r["unit"], r["rule"]) for r in answer.json()["items"]] == [
        ("backup_gib_months", "0.05", "GiB-month", "measured"),
        ("cpu_core_hours", "0.031", "core-hour", "max"),
        ("memory_gib_hours", "0.0045", "GiB-hour", "request"),
        ("storage_gib_months", "0.115", "GiB-month", "request"),
    ]
    twice = {"measure": "cpu_core_hours", "rate": "0.04", "effective_from": "2024-01-01"}
    _problem(
        client.post(f"{API}/rates", json=twice, headers=world.auth("operator")), 409, "price_exists"
    )
