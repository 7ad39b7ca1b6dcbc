from __future__ import annotations

from decimal import Decimal

from controlplane.billing import Period, SharingKey, estimate_plan_cost
from tests.billing.builders import NOW, local, pool, prices, started, tenant

APRIL = Period(2024, 4)
GENT, LIER, BOOM = tenant("gent", "44021"), tenant("lier", "12021"), tenant("boom", "11005")


def test_estimate_adds_the_plan_fee_and_indicative_shares() -> None:
    events = [started("i1", "gent", local(2024, 3, 1)), started("i2", "lier", local(2024, 3, 1))]
    estimate = estimate_plan_cost(
        tenant=BOOM,
        service="forms",
        plan="large",
        reference_period=APRIL,
        tenants=[GENT, LIER],
        events=events,
        prices=prices(small="100.00", large="300.00"),
        pools=[
            pool("forms-licence", "90.00", SharingKey.EQUAL, service="forms"),
            pool("platform", "300.00", SharingKey.EQUAL),
        ],
        now=NOW,
    )
    # Boom would be the third user of forms and the third active tenant.
    assert (estimate.plan_fee, estimate.service_share, estimate.platform_share) == (
        Decimal("300.00"),
        Decimal("30.00"),
        Decimal("100.00"),
    )
    assert estimate.monthly_total == Decimal("430.00")
    assert estimate.additional == Decimal("430.00")
    assert (estimate.service_members, estimate.platform_members) == (3, 3)


def test_estimate_for_an_existing_user_counts_only_the_extra() -> None:
    events = [started("i1", "gent", local(2024, 3, 1))]
    estimate = estimate_plan_cost(
        tenant=GENT,
        service="forms",
        plan="small",
        reference_period=APRIL,
        tenants=[GENT, LIER],
        events=events,
        prices=prices(small="100.00"),
        pools=[pool("forms-licence", "90.00", SharingKey.EQUAL, service="forms")],
        now=local(2024, 4, 10),
    )
    # Gent already pays the whole licence; a second instance only adds its plan fee.
    assert estimate.service_share == Decimal("90.00")
    assert estimate.additional == Decimal("100.00")
