"""Sharing keys: who pays which exact part of a cost pool, and how many cents that is.

A key turns the pool's members into exact shares (fractions summing to 1):

- ``equal``: 1/n each;
- ``inhabitants``: inhabitants / total inhabitants;
- ``usage``: the member's instance-hours (or requested CPU- or memory-hours, or rated usage
  cost in cents) / the total;
- ``mixed``: alpha/100 * 1/n + (1 - alpha/100) * inhabitants / total inhabitants.

The pool is rounded to cents once, then split by largest remainder (tie-break: NIS code, then
slug), so the amounts add up exactly to the pool and do not depend on the members' order.

This module must not know about events, prices or the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from controlplane.billing.documents import doc
from controlplane.billing.errors import CostPoolInvalid, InhabitantsMissing, UsageInvalid
from controlplane.billing.models import CostPool, SharingKey, TenantInfo
from controlplane.billing.money import cents_of, from_cents, largest_remainder


@dataclass(frozen=True, slots=True)
class Member:
    """A tenant that shares a pool, with its usage (in the pool's measure) in the period.

    ``usage`` is ``None`` when the measure is unknown (e.g. CPU-hours of an instance whose
    requests were not recorded); only the ``usage`` key needs it.
    """

    tenant: TenantInfo
    usage: Fraction | None = None
    #: The part of the period the member took part in the pool (days used / days in the
    #: month, see ``statements``); 1 for a full month. Equal, inhabitants and mixed keys
    #: multiply the member's weight by it, then renormalise so the shares still sum to 1.
    presence: Fraction = Fraction(1)


@dataclass(frozen=True, slots=True)
class Share:
    """One member's part of a pool: its weight, exact share and amount in euro."""

    tenant: str
    weight: Fraction
    share: Fraction
    #: Written as the money amount (``"12.34"``) under ``amount`` in documents.
    amount_cents: int = field(metadata=doc(key="amount", cents=True))

    @property
    def amount(self) -> Decimal:
        return from_cents(self.amount_cents)


def exact_shares(pool: CostPool, members: Sequence[Member]) -> dict[str, tuple[Fraction, Fraction]]:
    """Each member's (weight, exact share) under the pool's key; the shares sum to 1."""
    if not members:
        return {}
    key = pool.key
    n = len(members)
    if key is not SharingKey.USAGE and any(m.presence != 1 for m in members):
        return _prorated_shares(pool, members)
    if key is SharingKey.EQUAL:
        one, equal = Fraction(1), Fraction(1, n)
        return {m.tenant.slug: (one, equal) for m in members}
    if key is SharingKey.USAGE:
        weights = {m.tenant.slug: _usage(pool, m) for m in members}
        numerators = _on_common_denominator(weights)
        total = sum(numerators.values())
        if total == 0:
            # Nobody used anything measurable (e.g. only zero-request instances): fall back to
            # equal rather than dividing by zero; the weights stay on the audit record.
            return {slug: (w, Fraction(1, n)) for slug, w in weights.items()}
        return {slug: (w, Fraction(numerators[slug], total)) for slug, w in weights.items()}
    inhabitants = {m.tenant.slug: _inhabitants(pool, m.tenant) for m in members}
    total_inhabitants = sum(inhabitants.values())
    if total_inhabitants == 0:
        raise InhabitantsMissing(
            detail=f"cost pool {pool.name!r} ({pool.key_label}) is shared by tenants with 0 "
            f"inhabitants in total ({n} members)",
            hint="fix the tenants' inhabitants in their master data, or use another key",
        )
    if key is SharingKey.INHABITANTS:
        return {
            slug: (Fraction(w), Fraction(w, total_inhabitants)) for slug, w in inhabitants.items()
        }
    if key is SharingKey.MIXED:
        assert pool.equal_percent is not None  # CostPool checks this
        # alpha = a/b; share = a/(b n) + (b - a) w / (b I) = (a I + (b - a) n w) / (b n I)
        alpha = Fraction(pool.equal_percent) / 100
        a, b = alpha.numerator, alpha.denominator
        denominator = b * n * total_inhabitants
        return {
            slug: (Fraction(w), Fraction(a * total_inhabitants + (b - a) * n * w, denominator))
            for slug, w in inhabitants.items()
        }
    raise CostPoolInvalid(detail=f"cost pool {pool.name!r}: unknown sharing key {key!r}")


def _prorated_shares(
    pool: CostPool, members: Sequence[Member]
) -> dict[str, tuple[Fraction, Fraction]]:
    """Equal/inhabitants/mixed shares when some members took part only part of the month.

    With f the presence and w the inhabitants: equal f / sum(f); inhabitants w f / sum(w f);
    mixed alpha f / sum(f) + (1 - alpha) w f / sum(w f). The weight kept for audit is f
    (equal) or w f. With every f = 1 this is exactly the unprorated key.
    """
    presence = {m.tenant.slug: m.presence for m in members}
    if any(f <= 0 for f in presence.values()):
        raise CostPoolInvalid(detail=f"cost pool {pool.name!r}: a member with no presence")
    total_presence = sum(presence.values(), Fraction(0))
    equal = {slug: f / total_presence for slug, f in presence.items()}
    if pool.key is SharingKey.EQUAL:
        return {slug: (presence[slug], equal[slug]) for slug in presence}
    weighted = {m.tenant.slug: _inhabitants(pool, m.tenant) * m.presence for m in members}
    total = sum(weighted.values(), Fraction(0))
    if total == 0:
        raise InhabitantsMissing(
            detail=f"cost pool {pool.name!r} ({pool.key_label}) is shared by tenants with 0 "
            "inhabitants in total",
            hint="fix the tenants' inhabitants in their master data, or use another key",
        )
    by_inhabitants = {slug: w / total for slug, w in weighted.items()}
    if pool.key is SharingKey.INHABITANTS:
        return {slug: (weighted[slug], by_inhabitants[slug]) for slug in weighted}
    assert pool.equal_percent is not None  # CostPool checks this
    alpha = Fraction(pool.equal_percent) / 100
    return {
        slug: (weighted[slug], alpha * equal[slug] + (1 - alpha) * by_inhabitants[slug])
        for slug in weighted
    }


def _on_common_denominator(weights: dict[str, Fraction]) -> dict[str, int]:
    common = math.lcm(*(w.denominator for w in weights.values()))
    return {slug: w.numerator * (common // w.denominator) for slug, w in weights.items()}


def allocate(pool: CostPool, members: Sequence[Member]) -> list[Share]:
    """The pool's amount, rounded to cents, split among ``members`` (sorted NIS, slug)."""
    exact = exact_shares(pool, members)
    tenants: Mapping[str, TenantInfo] = {m.tenant.slug: m.tenant for m in members}
    ordered = sorted(exact, key=lambda slug: tenants[slug].tie_break)
    cents = largest_remainder(
        cents_of(pool.monthly_amount),
        [(slug, exact[slug][1]) for slug in ordered],
        tie_break={slug: tenants[slug].tie_break for slug in ordered},
    )
    return [Share(slug, exact[slug][0], exact[slug][1], cents[slug]) for slug in ordered]


def _inhabitants(pool: CostPool, tenant: TenantInfo) -> int:
    if tenant.inhabitants is None:
        raise InhabitantsMissing(
            detail=f"tenant {tenant.slug} ({tenant.name}, NIS {tenant.nis_code}) has no "
            f"inhabitants, which cost pool {pool.name!r} needs for its {pool.key_label} key",
            hint=f"set the inhabitants of {tenant.slug} in its master data (with the "
            "reference year), or give the pool the equal or usage key",
        )
    return tenant.inhabitants


def _usage(pool: CostPool, member: Member) -> Fraction:
    if member.usage is None:
        raise UsageInvalid(
            detail=f"cost pool {pool.name!r} shares by {pool.usage_measure}, but the usage "
            f"events of tenant {member.tenant.slug} do not record the requested resources",
            hint="record cpu and memory on started/plan_changed events, or share the pool by "
            "instance_hours",
        )
    return member.usage
