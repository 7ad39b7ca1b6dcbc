"""Robust statements: shares prorated by days used, the trial grace, missing inhabitants.

Issue 16 item 2. The engine is pure, so these run without a database; the API and cityctl
side is in test_api_billing.py and tests/cli/test_billing_robust.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.billing.errors import InhabitantsMissing
from controlplane.billing.estimates import estimate_plan_cost
from controlplane.billing.models import PriceEntry, SharingKey
from controlplane.billing.periods import Period
from controlplane.billing.statements import INHABITANTS_MISSING_FLAG, compute_statements
from tests.billing.builders import NOW, local, pool, prices, started, stopped, tenant

APRIL = Period.parse("2024-04")
SLUGS = ["aalst", "boom", "gent", "lier", "mol", "tielt"]


def _april(days: list[int], key: SharingKey, amount: str, inhabitants: list[int]) -> Any:
    """Tenant i runs one forms instance for the last ``days[i]`` Brussels days of April."""
    tenants = [
        tenant(slug, f"1{i:04d}", inhabitants=inhabitants[i])
        for i, slug in enumerate(SLUGS[: len(days)])
    ]
    events = [
        started(f"i{i}", t.slug, local(2024, 4, 31 - d))
        for i, (t, d) in enumerate(zip(tenants, days, strict=True))
    ]
    return compute_statements(
        period=APRIL,
        tenants=tenants,
        events=events,
        prices=prices(small="10.00"),
        pools=[pool("licence", amount, key, service="forms", equal_percent=_percent(key))],
        now=NOW,
    )


def _percent(key: SharingKey) -> str | None:
    return "30" if key is SharingKey.MIXED else None


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(1, 30), st.integers(1, 500_000)), min_size=1, max_size=len(SLUGS)
    ),
    key=st.sampled_from([SharingKey.EQUAL, SharingKey.INHABITANTS, SharingKey.MIXED]),
    cents=st.integers(0, 10**9),
)
def test_prorated_shares_add_up_and_follow_the_days(
    data: list[tuple[int, int]], key: SharingKey, cents: int
) -> None:
    days = [d for d, _ in data]
    inhabitants = [w for _, w in data]
    amount = Decimal(cents).scaleb(-2)
    (allocation,) = _april(days, key, str(amount), inhabitants).pools
    got = {s.tenant: s.amount for s in allocation.shares}
    # The pool still totals its amount, to the cent.
    assert sum(got.values(), Decimal(0)) == amount
    # Each share is within a cent of its exact prorated part:
    # equal d/sum(d); inhabitants w d/sum(w d); mixed 30 % equal + 70 % by inhabitants.
    total_days = sum(days)
    total_weighted = sum(d * w for d, w in data)
    for slug, (d, w) in zip(SLUGS, data, strict=False):
        equal = Fraction(d, total_days)
        by_inhabitants = Fraction(d * w, total_weighted)
        exact_share = {
            SharingKey.EQUAL: equal,
            SharingKey.INHABITANTS: by_inhabitants,
            SharingKey.MIXED: Fraction(3, 10) * equal + Fraction(7, 10) * by_inhabitants,
        }[key]
        exact = Fraction(cents, 100) * exact_share
        assert abs(Fraction(got[slug]) - exact) < Fraction(1, 100)


def test_a_tenant_that_joined_on_the_30th_pays_a_thirtieth_of_a_full_share() -> None:
    # gent all April (30 days), boom from 30 April (1 day): equal weights 30 and 1.
    (allocation,) = _april([30, 1], SharingKey.EQUAL, "310.00", [10_000, 10_000]).pools
    assert {s.tenant: s.amount for s in allocation.shares} == {
        "aalst": Decimal("300.00"),
        "boom": Decimal("10.00"),
    }


def test_a_tenant_that_stopped_on_the_2nd_pays_two_days() -> None:
    events = [
        started("a", "aalst", local(2024, 3, 1)),
        started("b", "boom", local(2024, 3, 1)),
        stopped("b", "boom", local(2024, 4, 2, 12)),  # ran on 1 and 2 April
    ]
    result = compute_statements(
        period=APRIL,
        tenants=[tenant("aalst", "41002"), tenant("boom", "11005")],
        events=events,
        prices=prices(small="10.00"),
        pools=[pool("licence", "320.00", SharingKey.EQUAL, service="forms")],
        now=NOW,
    )
    shares = {s.tenant: (s.share, s.amount) for s in result.pools[0].shares}
    assert shares == {
        "aalst": (Fraction(30, 32), Decimal("300.00")),
        "boom": (Fraction(2, 32), Decimal("20.00")),
    }


def _trial(grace: timedelta) -> Any:
    # Gent tried Keycloak for 11 seconds; Aalst runs it all month. Pool 600.00, equal.
    trial_start = local(2024, 4, 10, 9)
    events = [
        started("k-aalst", "aalst", local(2024, 3, 1), service="keycloak"),
        started("k-gent", "gent", trial_start, service="keycloak"),
        stopped("k-gent", "gent", trial_start + timedelta(seconds=11), service="keycloak"),
    ]
    return compute_statements(
        period=APRIL,
        tenants=[tenant("aalst", "41002"), tenant("gent", "44021")],
        events=events,
        prices=prices(small="10.00").with_entries(
            PriceEntry("keycloak", "small", Decimal("10.00"))
        ),
        pools=[pool("keycloak-shared", "600.00", SharingKey.EQUAL, service="keycloak")],
        now=NOW,
        trial_grace=grace,
    )


def test_an_11_second_trial_puts_no_shared_cost_on_the_statement() -> None:
    result = _trial(timedelta(hours=24))
    assert [(s.tenant, s.amount) for s in result.pools[0].shares] == [("aalst", Decimal("600.00"))]
    gent = result.statement("gent")
    assert all(line.pool is None for line in gent.lines)  # only its plan fee line
    assert gent.total == Decimal("0.00")


def test_without_grace_the_trial_counts_for_its_one_day() -> None:
    result = _trial(timedelta(0))
    assert {s.tenant: s.amount for s in result.pools[0].shares} == {
        "aalst": Decimal("580.65"),  # 600 x 30/31
        "gent": Decimal("19.35"),  # 600 x 1/31
    }


def test_a_tenant_without_inhabitants_is_flagged_and_the_others_share_the_pool() -> None:
    tenants = [tenant("aalst", "41002", 30_000), tenant("boom", "11005", None)]
    tenants.append(tenant("gent", "44021", 10_000))
    events = [started(f"i-{t.slug}", t.slug, local(2024, 3, 1)) for t in tenants]
    result = compute_statements(
        period=APRIL,
        tenants=tenants,
        events=events,
        prices=prices(small="10.00"),
        pools=[pool("licence", "400.00", SharingKey.INHABITANTS, service="forms")],
        now=NOW,
    )
    (allocation,) = result.pools
    assert {s.tenant: s.amount for s in allocation.shares} == {
        "aalst": Decimal("300.00"),
        "gent": Decimal("100.00"),
    }
    assert "boom" not in allocation.note
    boom = result.statement("boom")
    (flagged,) = [line for line in boom.lines if line.pool == "licence"]
    assert flagged.flag == INHABITANTS_MISSING_FLAG
    assert flagged.amount == Decimal("0.00")
    assert boom.as_dict()["status"] == "incomplete"
    assert "status" not in result.statement("gent").as_dict()


def test_the_estimate_counts_a_full_month_for_the_new_instance_on_the_same_proration() -> None:
    # aalst used forms all April, gent the last 15 days; boom asks what one more costs.
    estimate = estimate_plan_cost(
        tenant=tenant("boom", "11005"),
        service="forms",
        plan="small",
        reference_period=APRIL,
        tenants=[tenant("aalst", "41002"), tenant("gent", "44021")],
        events=[
            started("a", "aalst", local(2024, 3, 1)),
            started("g", "gent", local(2024, 4, 16)),
        ],
        prices=prices(small="10.00"),
        pools=[pool("licence", "300.00", SharingKey.EQUAL, service="forms")],
        now=NOW,
    )
    # Day weights 30 (aalst), 15 (gent), 30 (boom, the whole month): 300 x 30/75.
    assert estimate.service_share == Decimal("120.00")
    assert estimate.plan_fee == Decimal("10.00")


def test_no_estimate_without_the_own_inhabitants() -> None:
    with pytest.raises(InhabitantsMissing) as caught:
        estimate_plan_cost(
            tenant=tenant("boom", "11005", None),
            service="forms",
            plan="small",
            reference_period=APRIL,
            tenants=[tenant("aalst", "41002")],
            events=[started("a", "aalst", local(2024, 3, 1))],
            prices=prices(small="10.00"),
            pools=[pool("licence", "300.00", SharingKey.INHABITANTS, service="forms")],
            now=NOW,
        )
    assert caught.value.hint == "cityctl tenant update boom --inhabitants N"
    assert "aalst" not in str(caught.value.detail)
