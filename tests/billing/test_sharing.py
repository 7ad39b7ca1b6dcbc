"""Sharing keys: exact shares, cents that add up, independent of order (property tests)."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.billing import CostPool, PoolKind, SharingKey, TenantInfo, UsageMeasure
from controlplane.billing.errors import InhabitantsMissing, UsageInvalid
from controlplane.billing.money import cents_of, largest_remainder
from controlplane.billing.sharing import Member, allocate, exact_shares
from tests.billing.builders import tenant


@st.composite
def members(draw: st.DrawFn) -> list[Member]:
    count = draw(st.integers(min_value=1, max_value=25))
    nis_codes = draw(
        st.lists(st.integers(10000, 99999), min_size=count, max_size=count, unique=True)
    )
    result = []
    for n, nis in enumerate(nis_codes):
        inhabitants = draw(st.integers(min_value=1, max_value=600_000))
        hours = draw(st.fractions(min_value=0, max_value=744, max_denominator=3600))
        result.append(Member(tenant(f"t{n}", str(nis), inhabitants), hours))
    return result


@st.composite
def pools(draw: st.DrawFn) -> CostPool:
    key = draw(st.sampled_from(list(SharingKey)))
    cents = draw(st.integers(min_value=0, max_value=10**10))
    return CostPool(
        name="pool",
        kind=PoolKind.PLATFORM,
        monthly_amount=Decimal(cents).scaleb(-2),
        key=key,
        equal_percent=(
            Decimal(draw(st.integers(0, 10000))).scaleb(-2) if key is SharingKey.MIXED else None
        ),
    )


@settings(max_examples=100)
@given(pool=pools(), group=members())
def test_shares_add_up_exactly_to_the_pool(pool: CostPool, group: list[Member]) -> None:
    shares = allocate(pool, group)
    assert sum(s.amount_cents for s in shares) == cents_of(pool.monthly_amount)
    assert sum((s.share for s in shares), Fraction(0)) == 1


@settings(max_examples=100)
@given(pool=pools(), group=members())
def test_no_negative_amounts_and_within_a_cent_of_exact(
    pool: CostPool, group: list[Member]
) -> None:
    total = cents_of(pool.monthly_amount)
    for share in allocate(pool, group):
        assert share.amount_cents >= 0
        assert abs(share.amount_cents - share.share * total) < 1


@settings(max_examples=100)
@given(pool=pools(), group=members(), seed=st.integers())
def test_shares_do_not_depend_on_the_order_of_tenants(
    pool: CostPool, group: list[Member], seed: int
) -> None:
    shuffled = list(group)
    random.Random(seed).shuffle(shuffled)
    assert allocate(pool, group) == allocate(pool, shuffled)


def test_ties_go_to_the_lowest_nis_code() -> None:
    # 1 cent over 3 equal tenants: only one can get it, always the same one.
    keys = {"b": ("11002", "b"), "a": ("11004", "a"), "c": ("11001", "c")}
    third = Fraction(1, 3)
    cents = largest_remainder(1, [(k, third) for k in keys], tie_break=keys)
    assert cents == {"c": 1, "b": 0, "a": 0}


def test_mixed_key_is_alpha_equal_plus_rest_by_inhabitants() -> None:
    pool = CostPool("p", PoolKind.PLATFORM, Decimal(100), SharingKey.MIXED, None, Decimal(40))
    group = [Member(tenant("a", "1", 30_000)), Member(tenant("b", "2", 10_000))]
    shares = exact_shares(pool, group)
    assert shares["a"][1] == Fraction(40, 100) / 2 + Fraction(60, 100) * Fraction(3, 4)
    assert shares["b"][1] == Fraction(40, 100) / 2 + Fraction(60, 100) * Fraction(1, 4)


def test_usage_key_weighs_hours() -> None:
    pool = CostPool("p", PoolKind.PLATFORM, Decimal(90), SharingKey.USAGE)
    group = [Member(tenant("a", "1"), Fraction(100)), Member(tenant("b", "2"), Fraction(50))]
    assert [s.amount for s in allocate(pool, group)] == [Decimal("60.00"), Decimal("30.00")]


@pytest.mark.parametrize("key", [SharingKey.INHABITANTS, SharingKey.MIXED])
def test_tenant_without_inhabitants_is_named(key: SharingKey) -> None:
    percent = Decimal(25) if key is SharingKey.MIXED else None
    pool = CostPool("platform", PoolKind.PLATFORM, Decimal(100), key, None, percent)
    nobody = TenantInfo(slug="lier", name="Lier", nis_code="12021", inhabitants=None)
    with pytest.raises(InhabitantsMissing) as caught:
        allocate(pool, [Member(tenant("gent", "44021")), Member(nobody)])
    assert "tenant lier (Lier, NIS 12021) has no inhabitants" in caught.value.detail
    assert "cost pool 'platform'" in caught.value.detail
    assert caught.value.hint is not None
    assert "set the inhabitants of lier" in caught.value.hint


def test_cpu_hours_without_recorded_requests_is_explained() -> None:
    pool = CostPool(
        "p", PoolKind.PLATFORM, Decimal(1), SharingKey.USAGE, usage_measure=UsageMeasure.CPU_HOURS
    )
    with pytest.raises(UsageInvalid, match="do not record the requested resources"):
        allocate(pool, [Member(tenant("gent", "44021"), None)])
