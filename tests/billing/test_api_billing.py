"""Billing through the HTTP API, on SQLite and real PostgreSQL.

Two tenants (gent, brugge) use the demo service (small 10.00, large 40.00 a month) in April
2024; a platform pool of 300.00 is shared equally. The tests check who sees what, that closing
freezes the statements, that reopening is an audited operator action, that the exports agree
with the JSON, and that every bad input is refused naming what to fix, writing nothing.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from controlplane.auth.models import AuditEvent
from controlplane.billing.exports import read_csv
from controlplane.billing.periods import Period
from controlplane.billing.records import ClosedStatementSet, CostPoolRecord, PriceRecord
from controlplane.provisioning.models import UsageEvent, UsageKind
from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.factories import make_instance

PERIOD = "2024-04"
API = "/api/v1/billing"


def _tenant(session: Session, slug: str) -> Tenant:
    return session.exec(select(Tenant).where(Tenant.slug == slug)).one()


def _usage(
    session: Session, tenant: Tenant, name: str, plan: str, at: datetime, kind: UsageKind
) -> uuid.UUID:
    instance = make_instance(session, tenant, name, plan=plan)
    session.add(
        UsageEvent(
            instance_id=instance.id,
            tenant_id=tenant.id,
            service="demo",
            plan=plan,
            kind=kind,
            at=at,
        )
    )
    return instance.id


def _post_price(client: TestClient, world: World, monthly_price: str) -> httpx.Response:
    """Finance sets a price of demo/small from 1 April 2024."""
    price = {
        "service": "demo",
        "plan": "small",
        "monthly_price": monthly_price,
        "effective_from": "2024-04-01",
    }
    return client.post(f"{API}/prices", headers=world.auth("finance"), json=price)


def _post_pool(client: TestClient, world: World, **pool: str) -> httpx.Response:
    """Finance sets a cost pool."""
    return client.post(f"{API}/pools", headers=world.auth("finance"), json=pool)


@pytest.fixture
def billed(engine: Engine, client: TestClient, world: World) -> World:
    """gent: small all April; brugge: large from 16 April (Brussels); platform pool 300.00."""
    with Session(engine) as session:
        gent, brugge = _tenant(session, "gent"), _tenant(session, "brugge")
        _usage(session, gent, "forms", "small", datetime(2024, 3, 1, tzinfo=UTC), UsageKind.STARTED)
        # 16 April 00:00 in Brussels (summer time) is 15 April 22:00 UTC: exactly half of April.
        _usage(
            session,
            brugge,
            "forms",
            "large",
            datetime(2024, 4, 15, 22, tzinfo=UTC),
            UsageKind.STARTED,
        )
        session.commit()
    answer = _post_pool(
        client,
        world,
        name="platform",
        kind="platform",
        monthly_amount="300.00",
        key="equal",
        effective_from="2024-01-01",
    )
    assert answer.status_code == 201, answer.text
    return world


def _statements(client: TestClient, world: World, who: str, period: str = PERIOD) -> Any:
    answer = client.get(f"{API}/periods/{period}/statements", headers=world.auth(who))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _totals(document: dict[str, Any]) -> dict[str, str]:
    return {s["tenant"]["slug"]: s["totals"]["total"] for s in document["statements"]}


def _problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


def _count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


# -- who sees what -------------------------------------------------------------------------


def test_finance_reads_every_tenant_with_the_plan_fees_and_pool(
    client: TestClient, billed: World
) -> None:
    document = _statements(client, billed, "finance")
    assert document["scope"] == "all"
    assert document["status"] == "draft"
    fees = {s["tenant"]["slug"]: s["totals"]["plan_fees"] for s in document["statements"]}
    # gent: 10.00 all month; brugge: 40.00 for half of April.
    assert fees == {"gent": "10.00", "brugge": "20.00"}
    assert _totals(document) == {"gent": "160.00", "brugge": "170.00"}
    assert document["totals"]["total"] == "330.00"


def test_tenant_roles_read_only_their_own_tenant(client: TestClient, billed: World) -> None:
    mine = _statements(client, billed, "tenant-admin")
    assert mine["scope"] == "tenant:gent"
    assert [s["tenant"]["slug"] for s in mine["statements"]] == ["gent"]
    assert all(share["tenant"] == "gent" for pool in mine["pools"] for share in pool["shares"])
    viewer = _statements(client, billed, "tenant-viewer")
    assert [s["tenant"]["slug"] for s in viewer["statements"]] == ["gent"]

    own = client.get(
        f"{API}/periods/{PERIOD}/statements/gent", headers=billed.auth("tenant-viewer")
    )
    assert own.status_code == 200
    assert own.json()["totals"]["total"] == "160.00"
    # Another tenant's statement does not exist for a tenant role.
    other = client.get(
        f"{API}/periods/{PERIOD}/statements/brugge", headers=billed.auth("tenant-viewer")
    )
    _problem(other, 404, "tenant_not_found")
    other_admin = client.get(
        f"{API}/periods/{PERIOD}/statements/gent", headers=billed.auth("other-admin")
    )
    _problem(other_admin, 404, "tenant_not_found")
    finance = client.get(
        f"{API}/periods/{PERIOD}/statements/brugge", headers=billed.auth("finance")
    )
    assert finance.json()["totals"]["total"] == "170.00"


def test_tenant_roles_change_nothing(client: TestClient, billed: World) -> None:
    for who in ("tenant-admin", "tenant-viewer"):
        _problem(
            client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth(who)), 403, "forbidden"
        )
        price = {
            "service": "demo",
            "plan": "small",
            "monthly_price": "1.00",
            "effective_from": "2024-04-01",
        }
        _problem(
            client.post(f"{API}/prices", headers=billed.auth(who), json=price), 403, "forbidden"
        )


# -- close, freeze, reopen -----------------------------------------------------------------


def test_a_closed_period_never_changes(client: TestClient, billed: World, engine: Engine) -> None:
    closed = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance"))
    assert closed.status_code == 201, closed.text
    frozen = closed.json()
    assert frozen["status"] == "closed"
    assert frozen["digest"].startswith("sha256:")

    # Afterwards: a price dated in closed April is refused, one from May is taken; more usage
    # in April.
    _problem(_post_price(client, billed, "99.00"), 409, "period_closed")
    price = client.post(
        f"{API}/prices",
        headers=billed.auth("finance"),
        json={
            "service": "demo",
            "plan": "small",
            "monthly_price": "99.00",
            "effective_from": "2024-05-01",
        },
    )
    assert price.status_code == 201, price.text
    with Session(engine) as session:
        _usage(
            session,
            _tenant(session, "brugge"),
            "extra",
            "small",
            datetime(2024, 4, 2, tzinfo=UTC),
            UsageKind.STARTED,
        )
        session.commit()

    again = _statements(client, billed, "finance")
    del again["scope"], frozen["scope"]
    assert again == frozen
    # The next month (not closed) does see the new price.
    may = _statements(client, billed, "finance", "2024-05")
    assert may["status"] == "draft"
    assert {s["tenant"]["slug"]: s["totals"]["plan_fees"] for s in may["statements"]}["gent"] == (
        "99.00"
    )

    twice = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("operator"))
    body = _problem(twice, 409, "period_closed")
    assert frozen["digest"] in body["detail"]
    assert _count(engine, ClosedStatementSet) == 1


def test_reopen_is_an_audited_operator_action(
    client: TestClient, billed: World, engine: Engine
) -> None:
    first = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance")).json()
    reason = {"reason": "price of demo/small corrected from 2024-04-01"}
    _problem(
        client.post(f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("finance"), json=reason),
        403,
        "forbidden",
    )
    _problem(
        client.post(f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("operator"), json={}),
        422,
        "invalid",
    )
    reopened = client.post(
        f"{API}/periods/{PERIOD}/reopen", headers=billed.auth("operator"), json=reason
    )
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["closed_digest"] == first["digest"]
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "billing.reopen", AuditEvent.outcome == "success"
            )
        ).one()
        assert event.details["reason"] == reason["reason"]
        assert event.details["closed_digest"] == first["digest"]
        assert event.resource == f"billing-period:{PERIOD}"

    # Reopened: the period is a draft again and follows the corrected price.
    _post_price(client, billed, "12.00")
    draft = _statements(client, billed, "finance")
    assert draft["status"] == "draft"
    assert _totals(draft)["gent"] == "162.00"
    second = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance")).json()
    assert second["digest"] != first["digest"]
    closings = client.get(f"{API}/periods/{PERIOD}/closings", headers=billed.auth("finance"))
    history = closings.json()["items"]
    assert [(c["status"], c["digest"]) for c in history] == [
        ("reopened", first["digest"]),
        ("closed", second["digest"]),
    ]
    assert history[0]["reopen_reason"] == reason["reason"]
    _problem(
        client.post(f"{API}/periods/2024-03/reopen", headers=billed.auth("operator"), json=reason),
        409,
        "period_not_closed",
    )


def test_the_running_month_cannot_be_closed(client: TestClient, billed: World) -> None:
    current = str(Period.containing(datetime.now(UTC)))
    answer = client.post(f"{API}/periods/{current}/close", headers=billed.auth("finance"))
    _problem(answer, 409, "period_not_ended")


# -- exports -------------------------------------------------------------------------------


def test_xlsx_totals_equal_the_json_totals(client: TestClient, billed: World) -> None:
    client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance"))
    as_json = client.get(
        f"{API}/periods/{PERIOD}/export", params={"format": "json"}, headers=billed.auth("finance")
    )
    assert as_json.headers["content-type"].startswith("application/json")
    document = as_json.json()
    as_xlsx = client.get(
        f"{API}/periods/{PERIOD}/export", params={"format": "xlsx"}, headers=billed.auth("finance")
    )
    assert as_xlsx.status_code == 200
    assert as_xlsx.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert as_xlsx.headers["content-disposition"] == (
        f'attachment; filename="statements-{PERIOD}-{document["digest"][7:19]}.xlsx"'
    )
    sheet = load_workbook(io.BytesIO(as_xlsx.content))["Summary"]
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    by_tenant = {row[0]: row for row in rows[1:] if row and row[0]}
    total_column = header.index("total")
    assert Decimal(str(by_tenant["Total"][total_column])) == Decimal(document["totals"]["total"])
    for statement in document["statements"]:
        slug = statement["tenant"]["slug"]
        assert Decimal(str(by_tenant[slug][total_column])) == Decimal(statement["totals"]["total"])


def test_belgian_csv_round_trips(client: TestClient, billed: World) -> None:
    document = _statements(client, billed, "finance")
    answer = client.get(
        f"{API}/periods/{PERIOD}/export",
        params={"format": "csv-be"},
        headers=billed.auth("finance"),
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="statements-{PERIOD}-be-draft.csv"'
    )
    assert answer.content.startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads the accents
    rows = read_csv(answer.content, belgian=True)
    expected = [
        (s["tenant"]["slug"], line["kind"], Decimal(line["amount"]))
        for s in document["statements"]
        for line in s["lines"]
    ]
    assert [(r["tenant"], r["kind"], r["amount"]) for r in rows] == expected
    assert sum(r["amount"] for r in rows if isinstance(r["amount"], Decimal)) == Decimal(
        document["totals"]["total"]
    )


def test_a_tenant_exports_only_its_own_lines(client: TestClient, billed: World) -> None:
    answer = client.get(
        f"{API}/periods/{PERIOD}/export",
        params={"format": "csv"},
        headers=billed.auth("tenant-admin"),
    )
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="statements-{PERIOD}-gent-draft.csv"'
    )
    assert {r["tenant"] for r in read_csv(answer.content)} == {"gent"}


# -- estimates -----------------------------------------------------------------------------


def test_estimate_for_the_own_tenant(client: TestClient, billed: World) -> None:
    answer = client.get(
        f"{API}/estimate",
        params={"service": "demo", "plan": "large"},
        headers=billed.auth("tenant-admin"),
    )
    assert answer.status_code == 200, answer.text
    estimate = answer.json()
    assert estimate["tenant"] == "gent"
    assert Decimal(estimate["plan_fee"]) == Decimal("40.00")
    assert Decimal(estimate["monthly_total"]) == sum(
        Decimal(estimate[k]) for k in ("plan_fee", "service_share", "platform_share")
    )
    other = client.get(
        f"{API}/estimate",
        params={"service": "demo", "plan": "large", "tenant": "brugge"},
        headers=billed.auth("tenant-admin"),
    )
    _problem(other, 404, "tenant_not_found")
    body = _problem(
        client.get(
            f"{API}/estimate",
            params={"service": "demo", "plan": "large"},
            headers=billed.auth("finance"),
        ),
        422,
        "invalid",
    )
    assert body["errors"][0]["location"] == "query.tenant"
    body = _problem(
        client.get(
            f"{API}/estimate",
            params={"service": "demo", "plan": "huge", "tenant": "gent"},
            headers=billed.auth("finance"),
        ),
        422,
        "plan_unknown",
    )
    assert "small" in body["errors"][0]["message"]


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "code"),
    [
        ("2024-4", "period_invalid"),
        ("2024-13", "period_invalid"),
        ("april", "period_invalid"),
        ("2999-01", "period_in_future"),
    ],
)
def test_bad_periods_are_refused(client: TestClient, billed: World, period: str, code: str) -> None:
    body = _problem(
        client.get(f"{API}/periods/{period}/statements", headers=billed.auth("finance")), 422, code
    )
    assert period in body["detail"]
    assert body["hint"]
    _problem(
        client.post(f"{API}/periods/{period}/close", headers=billed.auth("finance")), 422, code
    )


def test_a_pool_without_a_key_is_refused(client: TestClient, billed: World, engine: Engine) -> None:
    before = _count(engine, CostPoolRecord)
    body = _problem(
        _post_pool(
            client,
            billed,
            name="licences",
            kind="platform",
            monthly_amount="50.00",
            effective_from="2024-04-01",
        ),
        422,
        "cost_pool_invalid",
    )
    assert "licences" in body["detail"]
    assert "key" in body["detail"]
    assert "inhabitants" in body["hint"]
    assert _count(engine, CostPoolRecord) == before
    with Session(engine) as session:
        assert not session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "billing.pool.create",
                col(AuditEvent.resource).contains("licences"),
            )
        ).all()


def test_a_tenant_without_inhabitants_is_flagged_and_blocks_nobody(
    client: TestClient, billed: World, engine: Engine
) -> None:
    answer = _post_pool(
        client,
        billed,
        name="demo-licence",
        kind="service",
        service="demo",
        monthly_amount="100.00",
        key="inhabitants",
        effective_from="2024-04-01",
    )
    assert answer.status_code == 201, answer.text
    with Session(engine) as session:
        brugge = _tenant(session, "brugge")
        brugge.inhabitants = None
        session.add(brugge)
        session.commit()
    # Finance: every statement, brugge's line flagged, gent pays the pool over the tenants
    # that have inhabitants (here: gent alone).
    document = _statements(client, billed, "finance")
    by_tenant = {s["tenant"]["slug"]: s for s in document["statements"]}
    brugge_line = next(x for x in by_tenant["brugge"]["lines"] if x["pool"] == "demo-licence")
    assert brugge_line["flag"] == "incomplete: inhabitants missing"
    assert brugge_line["amount"] == "0.00"
    assert by_tenant["brugge"]["status"] == "incomplete"
    gent_line = next(x for x in by_tenant["gent"]["lines"] if x["pool"] == "demo-licence")
    assert gent_line["amount"] == "100.00"
    assert "flag" not in gent_line
    # gent's viewer gets its statement and export, and never reads brugge's name.
    for answer in (
        client.get(f"{API}/periods/{PERIOD}/statements", headers=billed.auth("tenant-viewer")),
        client.get(f"{API}/periods/{PERIOD}/statements/gent", headers=billed.auth("tenant-viewer")),
        client.get(
            f"{API}/periods/{PERIOD}/export",
            params={"format": "json"},
            headers=billed.auth("tenant-viewer"),
        ),
    ):
        assert answer.status_code == 200, answer.text
        assert "brugge" not in answer.text.lower()
    # brugge's admin sees its own flag (and the pool's note, which names nobody).
    own = client.get(
        f"{API}/periods/{PERIOD}/statements/brugge", headers=billed.auth("other-admin")
    )
    assert own.status_code == 200, own.text
    assert own.json()["flags"] == ["incomplete: inhabitants missing (pool demo-licence)"]
    assert "gent" not in own.text.lower()
    # The month closes, and the flag is kept in the closed document.
    closed = client.post(f"{API}/periods/{PERIOD}/close", headers=billed.auth("finance"))
    assert closed.status_code == 201, closed.text
    again = _statements(client, billed, "finance")
    assert again["status"] == "closed"
    brugge_closed = next(s for s in again["statements"] if s["tenant"]["slug"] == "brugge")
    assert brugge_closed["flags"] == ["incomplete: inhabitants missing (pool demo-licence)"]


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ("-5.00", "price_invalid"),
        ("5.001", "price_invalid"),
        ("99999999999.9", "price_invalid"),
        ("NaN", "invalid"),
        ("1e400", "invalid"),
    ],
)
def test_bad_prices_are_refused(
    client: TestClient, billed: World, engine: Engine, price: str, code: str
) -> None:
    body = _problem(
        _post_price(client, billed, price),
        422,
        code,
    )
    # The domain names the price; the request schema names the field.
    named = body["detail"] + " ".join(e["location"] for e in body["errors"])
    assert ("demo/small" if code == "price_invalid" else "monthly_price") in named
    assert _count(engine, PriceRecord) == 0


def test_a_price_for_an_unknown_plan_or_twice_is_refused(
    client: TestClient, billed: World, engine: Engine
) -> None:
    price = {
        "service": "demo",
        "plan": "huge",
        "monthly_price": "5.00",
        "effective_from": "2024-04-01",
    }
    _problem(
        client.post(f"{API}/prices", headers=billed.auth("finance"), json=price),
        422,
        "plan_unknown",
    )
    price["plan"] = "small"
    assert (
        client.post(f"{API}/prices", headers=billed.auth("finance"), json=price).status_code == 201
    )
    _problem(
        client.post(f"{API}/prices", headers=billed.auth("finance"), json=price),
        409,
        "price_exists",
    )
    assert _count(engine, PriceRecord) == 1
    listed = client.get(f"{API}/prices", headers=billed.auth("tenant-viewer")).json()["items"]
    assert {(p["plan"], p["source"], p["monthly_price"]) for p in listed} == {
        ("small", "catalogue", "10.00"),
        ("large", "catalogue", "40.00"),
        ("small", "finance", "5.00"),
    }
    # Paged like every list: one at a time gives the same prices, each once, in order.
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"{API}/prices", params=params, headers=billed.auth("finance")).json()
        assert len(page["items"]) <= 1
        walked.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == listed


def test_a_pool_must_start_on_the_first_of_a_month(client: TestClient, billed: World) -> None:
    body = _problem(
        _post_pool(
            client,
            billed,
            name="hosting",
            kind="platform",
            monthly_amount="5.00",
            key="equal",
            effective_from="2024-04-15",
        ),
        422,
        "cost_pool_invalid",
    )
    assert body["errors"][0]["location"] == "effective_from"
    listed = client.get(f"{API}/pools", headers=billed.auth("finance")).json()
    assert [p["name"] for p in listed["items"]] == ["platform"]
    assert listed["next_cursor"] is None


def test_a_pool_amount_is_stored_as_sent_or_refused(
    client: TestClient, billed: World, engine: Engine
) -> None:
    before = _count(engine, CostPoolRecord)
    for field, value in (("monthly_amount", "50.005"), ("equal_percent", "33.333")):
        pool = {
            "name": "hosting",
            "kind": "platform",
            "monthly_amount": "50.00",
            "key": "mixed",
            "equal_percent": "40",
            "effective_from": "2024-04-01",
            field: value,
        }
        body = _problem(
            client.post(f"{API}/pools", headers=billed.auth("finance"), json=pool),
            422,
            "cost_pool_invalid",
        )
        assert body["errors"][0]["location"] == field
    assert _count(engine, CostPoolRecord) == before
