"""Money arithmetic: exact fractions in, whole cents out, nothing lost on the way.

Amounts are :class:`~decimal.Decimal` with two places; shares are exact
:class:`~fractions.Fraction` values (kept on statements for audit). A pool is rounded to
cents once and then split with the largest-remainder method, so the parts always add up to
the pool exactly; ties go to the party that sorts first by its tie-break key (NIS code, then
slug), so that the result never depends on the order of the input.

This module must not know about tenants, pools or periods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

CENT = Decimal("0.01")


def cents_of(amount: Decimal) -> int:
    """``amount`` rounded half-up to whole cents."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def round_to_cents(value: Fraction) -> Decimal:
    """An exact amount rounded half away from zero to cents (the usual invoice rounding)."""
    scaled = value * 100
    whole, rest = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * rest >= scaled.denominator:
        whole += 1
    return from_cents(whole if scaled >= 0 else -whole)


def largest_remainder[K](
    total_cents: int,
    shares: Sequence[tuple[K, Fraction]],
    *,
    tie_break: Mapping[K, tuple[str, ...]],
) -> dict[K, int]:
    """Split ``total_cents`` by ``shares`` (summing to 1) into whole cents that add up exactly.

    Everyone first gets the floor of their exact part; the cents left over go one each to the
    largest remainders, ties broken by ``tie_break`` (ascending). ``K`` is any hashable key.
    """
    if not shares:
        return {}
    # On a common denominator the exact parts are integer ratios, so floors and remainders
    # are plain integer divisions (exact, and far faster than fraction arithmetic).
    common = math.lcm(*(share.denominator for _, share in shares))
    floors: dict[K, int] = {}
    remainders: list[tuple[int, tuple[str, ...], K]] = []
    for key, share in shares:
        floor, rest = divmod(total_cents * share.numerator * (common // share.denominator), common)
        floors[key] = floor
        remainders.append((-rest, tie_break[key], key))
    left = total_cents - sum(floors.values())
    # Largest remainder first, then tie-break ascending: never the input order.
    remainders.sort(key=lambda item: (item[0], item[1]))
    for _, _, key in remainders[:left]:
        floors[key] += 1
    return floors


def fraction_text(value: Fraction) -> str:
    """An exact share as ``numerator/denominator`` (``1`` and ``0`` without a slash)."""
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def money_text(amount: Decimal) -> str:
    """The documented money format: plain digits, two decimals, never ``1E+3`` or ``-0.00``."""
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if cents == 0:
        cents = abs(cents)
    return f"{cents:f}"
