from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.billing import (
    LineKind,
    Period,
    PriceEntry,
    PriceList,
    SetStatus,
    SharingKey,
    close_period,
    compute_statements,
    reopen_period,
)
from controlplane.billing.errors import (
    CostPoolInvalid,
    PeriodAlreadyClosed,
    PeriodInFuture,
    PeriodNotClosed,
    PeriodNotEnded,
    ReopenReasonRequired,
    StatementDigestMismatch,
    TenantInvalid,
)
from controlplane.billing.exports import to_json
from controlplane.billing.money import from_cents
from tests.billing.builders import NOW, changed, local, pool, prices, started, stopped, tenant

APRIL = Period(2024, 4)
GENT, LIER, BOOM = tenant("gent", "44021"), tenant("lier", "12021"), tenant("boom", "11005")


def _half_up(cents: int) -> int:
    return cents // 2 + cents % 2


@settings(max_examples=60)
@given(
    year=st.integers(2020, 2025),
    month=st.integers(1, 12),
    price_a=st.integers(0, 10**7),
    price_b=st.integers(0, 10**7),
)
def test_half_month_on_plan_a_and_half_on_plan_b_pays_half_of_each(
    year: int, month: int, price_a: int, price_b: int
) -> None:
    period = Period(year, month)
    # Any month (DST ones too) lasts a whole number of hours, so its midpoint is exact.
    midpoint = period.start + (period.end - period.start) / 2
    events = [
        started("i1", "gent", period.start - timedelta(days=3), plan="a"),
        changed("i1", "gent", midpoint, "b"),
    ]
    price_list = prices(a=str(from_cents(price_a)), b=str(from_cents(price_b)))
    result = compute_statements(
        period=period, tenants=[GENT], events=events, prices=price_list, now=NOW
    )
    lines = result.statement("gent").lines
    assert [(line.plan, line.exact_share) for line in lines] == [
        ("a", Fraction(1, 2)),
        ("b", Fraction(1, 2)),
    ]
    assert [line.amount for line in lines] == [
        from_cents(_half_up(price_a)),
        from_cents(_half_up(price_b)),
    ]


def test_price_change_inside_the_month_splits_the_line() -> None:
    price_list = prices(small="300.00").with_entries(
        PriceEntry("forms", "small", Decimal("600.00"), date(2024, 4, 21))
    )
    result = compute_statements(
        period=APRIL,
        tenants=[GENT],
        events=[started("i1", "gent", local(2024, 3, 1))],
        prices=price_list,
        now=NOW,
    )
    lines = result.statement("gent").lines
    assert [(line.unit_price, line.exact_share, line.amount) for line in lines] == [
        (Decimal("300.00"), Fraction(2, 3), Decimal("200.00")),
        (Decimal("600.00"), Fraction(1, 3), Decimal("200.00")),
    ]
    assert result.statement("gent").total == Decimal("400.00")


def test_service_pool_is_shared_only_by_its_users() -> None:
    events = [
        started("i1", "gent", local(2024, 4, 1)),
        started("i2", "lier", local(2024, 4, 1), service="wiki"),
        started("i3", "boom", local(2024, 4, 1)),  # all month: shares are prorated by days
    ]
    price_list = prices(small="10.00").with_entries(PriceEntry("wiki", "small", Decimal("10.00")))
    result = compute_statements(
        period=APRIL,
        tenants=[GENT, LIER, BOOM],
        events=events,
        prices=price_list,
        pools=[pool("forms-licence", "100.01", SharingKey.EQUAL, service="forms")],
        now=NOW,
    )
    (allocation,) = result.pools
    assert [(s.tenant, s.amount) for s in allocation.shares] == [
        ("boom", Decimal("50.01")),  # NIS 11005 sorts first and gets the odd cent
        ("gent", Decimal("50.00")),
    ]
    assert all(line.kind is LineKind.PLAN_FEE for line in result.statement("lier").lines)


def test_platform_pool_goes_to_active_tenants() -> None:
    events = [started("i1", "gent", local(2024, 4, 1))]
    common = {
        "period": APRIL,
        "tenants": [GENT, LIER],
        "events": events,
        "prices": prices(small="10.00"),
        "pools": [pool("platform", "90.00", SharingKey.EQUAL)],
        "now": NOW,
    }
    by_usage = compute_statements(**common)  # type: ignore[arg-type]
    assert [s.tenant for s in by_usage.pools[0].shares] == ["gent"]
    listed = compute_statements(**common, active_tenants=["gent", "lier"])  # type: ignore[arg-type]
    assert [(s.tenant, s.amount) for s in listed.pools[0].shares] == [
        ("lier", Decimal("45.00")),
        ("gent", Decimal("45.00")),
    ]
    assert listed.statement("lier").total == Decimal("45.00")


def test_pool_without_users_is_reported_not_lost() -> None:
    result = compute_statements(
        period=APRIL,
        tenants=[GENT],
        events=[started("i1", "gent", local(2024, 4, 1))],
        prices=prices(small="10.00"),
        pools=[pool("wiki-licence", "50.00", SharingKey.EQUAL, service="wiki")],
        now=NOW,
    )
    assert result.pools[0].note == "no tenant used wiki in 2024-04"
    assert result.pools[0].allocated == Decimal("0.00")


def test_usage_of_an_unknown_tenant_is_refused() -> None:
    with pytest.raises(TenantInvalid, match="name tenant lier, which is not in the tenant"):
        compute_statements(
            period=APRIL,
            tenants=[GENT],
            events=[started("i1", "lier", local(2024, 4, 1))],
            prices=prices(small="1.00"),
            now=NOW,
        )


def test_two_pools_with_one_name_are_refused() -> None:
    twice = [pool("platform", "1", SharingKey.EQUAL), pool("platform", "2", SharingKey.EQUAL)]
    with pytest.raises(CostPoolInvalid, match="two cost pools are named 'platform'"):
        compute_statements(
            period=APRIL, tenants=[], events=[], prices=PriceList(), pools=twice, now=NOW
        )


def test_future_period_is_refused() -> None:
    with pytest.raises(PeriodInFuture):
        compute_statements(
            period=Period(2026, 2), tenants=[], events=[], prices=PriceList(), now=NOW
        )


def test_running_month_is_metered_to_date_and_cannot_be_closed() -> None:
    now = local(2024, 4, 16)
    result = compute_statements(
        period=APRIL,
        tenants=[GENT],
        events=[started("i1", "gent", local(2024, 3, 1))],
        prices=prices(small="300.00"),
        now=now,
    )
    assert result.statement("gent").total == Decimal("150.00")
    with pytest.raises(PeriodNotEnded, match="2024-04 has not ended"):
        close_period(result, closed_by="finance", at=now)


def _april(events: list, price_list: PriceList):  # type: ignore[no-untyped-def,type-arg]
    return compute_statements(
        period=APRIL,
        tenants=[GENT, LIER],
        events=events,
        prices=price_list,
        pools=[pool("platform", "100.00", SharingKey.INHABITANTS)],
        now=NOW,
    )


@settings(max_examples=30)
@given(new_price=st.integers(0, 10**6), extra_days=st.integers(1, 25))
def test_closed_statements_never_change_when_prices_or_usage_change(
    new_price: int, extra_days: int
) -> None:
    events = [started("i1", "gent", local(2024, 3, 1)), started("i2", "lier", local(2024, 4, 5))]
    price_list = prices(small="123.45")
    closed = close_period(_april(events, price_list), closed_by="finance", at=NOW)
    frozen = to_json(closed)

    # Afterwards: a new price from the 1st of the month, more usage, even the same list mutated.
    events.append(stopped("i2", "lier", local(2024, 4, 5) + timedelta(days=extra_days)))
    events.append(started("i3", "gent", local(2024, 4, 2)))
    later = price_list.with_entries(
        PriceEntry("forms", "small", from_cents(new_price), date(2024, 4, 1))
    )
    recomputed = _april(events, later)

    assert to_json(closed) == frozen
    assert json.loads(frozen)["digest"] == closed.digest == closed.content_digest()
    closed.verify()
    assert recomputed.status is SetStatus.DRAFT
    assert recomputed.digest is None


def test_close_reopen_rules() -> None:
    draft = _april([started("i1", "gent", local(2024, 3, 1))], prices(small="1.00"))
    with pytest.raises(PeriodNotClosed):
        reopen_period(draft, reason="typo", reopened_by="ops", at=NOW)
    closed = close_period(draft, closed_by="finance", at=NOW)
    assert closed.status is SetStatus.CLOSED
    assert draft.status is SetStatus.DRAFT
    with pytest.raises(PeriodAlreadyClosed, match="2024-04 is already closed"):
        close_period(closed, closed_by="finance", at=NOW)
    with pytest.raises(
        ReopenReasonRequired, match="reopening billing period 2024-04 needs a reason"
    ):
        reopen_period(closed, reason="  ", reopened_by="ops", at=NOW)
    reopening = reopen_period(closed, reason="price corrected", reopened_by="ops", at=NOW)
    assert (reopening.closed_digest, reopening.reason) == (closed.digest, "price corrected")


def test_a_changed_closed_set_fails_verification() -> None:
    closed = close_period(
        _april([started("i1", "gent", local(2024, 3, 1))], prices(small="1.00")),
        closed_by="finance",
        at=NOW,
    )
    tampered = replace(closed, closed_by="someone else")
    with pytest.raises(StatementDigestMismatch):
        tampered.verify()
    with pytest.raises(StatementDigestMismatch):
        reopen_period(tampered, reason="x", reopened_by="ops", at=NOW)
