"""Bad prices and pools: each refused with a message naming what to fix."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from controlplane.billing import (
    CostPool,
    PoolKind,
    PriceEntry,
    PriceList,
    SharingKey,
    plan_requests,
)
from controlplane.billing.errors import CostPoolInvalid, PriceInvalid, PriceMissing
from controlplane.catalog.models import Plan, RequestLimit
from tests.billing.builders import local


def test_negative_price_is_refused() -> None:
    with pytest.raises(PriceInvalid) as caught:
        PriceEntry("forms", "small", Decimal("-1.00"), date(2024, 4, 1))
    assert "price of forms/small from 2024-04-01 is negative (-1.00)" in caught.value.detail


def test_float_price_is_refused() -> None:
    with pytest.raises(PriceInvalid, match="is a float"):
        PriceEntry("forms", "small", 12.5)  # type: ignore[arg-type]


def test_price_with_fractions_of_cents_is_refused() -> None:
    with pytest.raises(PriceInvalid, match=r"more than two decimals \(1.005\)"):
        PriceEntry("forms", "small", Decimal("1.005"))


def test_two_prices_on_the_same_date_are_refused() -> None:
    entries = (
        PriceEntry("forms", "small", Decimal(1), date(2024, 4, 1)),
        PriceEntry("forms", "small", Decimal(2), date(2024, 4, 1)),
    )
    with pytest.raises(PriceInvalid, match="two prices for forms/small from 2024-04-01"):
        PriceList(entries)


def test_missing_price_names_service_and_plan() -> None:
    with pytest.raises(PriceMissing) as caught:
        PriceList().price_at("forms", "small", local(2024, 4, 1))
    assert "no price for forms/small" in caught.value.detail
    assert caught.value.hint == "add a price list entry for service forms, plan small"


def test_price_before_its_first_date_is_missing() -> None:
    prices = PriceList((PriceEntry("forms", "small", Decimal(1), date(2024, 4, 10)),))
    with pytest.raises(PriceMissing, match="its first price is from 2024-04-10"):
        prices.price_at("forms", "small", local(2024, 4, 9))


def test_price_takes_effect_at_brussels_midnight() -> None:
    prices = PriceList(
        (
            PriceEntry("forms", "small", Decimal(1)),
            PriceEntry("forms", "small", Decimal(2), date(2024, 4, 10)),
        )
    )
    segments = prices.segments("forms", "small", local(2024, 4, 1), local(2024, 5, 1))
    assert [(s.start, s.end, s.monthly_price) for s in segments] == [
        (local(2024, 4, 1), local(2024, 4, 10), Decimal(1)),
        (local(2024, 4, 10), local(2024, 5, 1), Decimal(2)),
    ]


def _pool(**changes: object) -> CostPool:
    fields: dict[str, object] = {
        "name": "platform",
        "kind": PoolKind.PLATFORM,
        "monthly_amount": Decimal(100),
        "key": SharingKey.EQUAL,
    }
    fields.update(changes)
    return CostPool(**fields)  # type: ignore[arg-type]


def test_pool_without_key_lists_the_keys() -> None:
    with pytest.raises(CostPoolInvalid) as caught:
        _pool(key=None)
    assert caught.value.detail == "cost pool 'platform' has no sharing key"
    assert caught.value.hint == "set key to one of: equal, inhabitants, usage, mixed"


def test_pool_with_unknown_key_is_refused() -> None:
    with pytest.raises(CostPoolInvalid, match="key 'population' is not one of: equal"):
        _pool(key="population")


def test_mixed_without_equal_percent_is_refused() -> None:
    with pytest.raises(CostPoolInvalid, match="uses the mixed key without equal_percent"):
        _pool(key=SharingKey.MIXED)


@pytest.mark.parametrize("percent", ["100.5", "250", "-1"])
def test_mixed_percent_outside_0_100_is_refused(percent: str) -> None:
    with pytest.raises(CostPoolInvalid, match="equal_percent"):
        _pool(key=SharingKey.MIXED, equal_percent=Decimal(percent))


def test_negative_pool_amount_is_refused() -> None:
    with pytest.raises(CostPoolInvalid, match="monthly amount is negative"):
        _pool(monthly_amount=Decimal("-0.01"))


def test_service_pool_needs_a_service() -> None:
    with pytest.raises(CostPoolInvalid, match="service pool without a service"):
        _pool(kind=PoolKind.SERVICE)


def test_equal_percent_only_with_mixed() -> None:
    with pytest.raises(CostPoolInvalid, match="only used by the mixed key"):
        _pool(equal_percent=Decimal(30))


def test_plan_requests_multiply_by_replicas() -> None:
    plan = Plan(
        name="medium",
        title="Medium",
        monthly_price=Decimal("10.00"),
        replicas=2,
        cpu=RequestLimit(request="250m", limit="1"),
        memory=RequestLimit(request="512Mi", limit="1Gi"),
        storage="10Gi",
    )
    assert plan_requests(plan) == (Decimal("0.5"), Decimal(1))
