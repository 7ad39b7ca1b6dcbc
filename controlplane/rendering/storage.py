"""Volumes never shrink: the storage an instance renders with, given what it had before.

A plan's ``storage`` sizes the instance's plan-dependent volumes. The API server lets a
PersistentVolumeClaim's request grow (when its StorageClass allows expansion) but never
shrink, and shrinking a database volume would lose data anyway. So an instance's volumes
keep the largest size they ever had: its **storage floor** is the largest storage any of its
applied revisions rendered with, and a render uses the plan's storage raised to that floor.
A plan change down keeps the volume size; a plan change up grows it.

This module holds that one rule, for the renderer (what to render), the reconciler (the
floor of an instance, from its revisions) and admission (what to tell the tenant). It must
not know about the database or targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity


def quantity(value: str) -> Decimal:
    """The amount of a Kubernetes quantity (``10Gi`` → bytes); ValueError when it is none."""
    return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]


def largest(sizes: Iterable[str | None]) -> str | None:
    """The largest of ``sizes`` as spelled (the first one on a tie), ignoring ``None``.

    Sizes that are not quantities are ignored: a floor never makes a render fail.
    """
    best: str | None = None
    best_amount = Decimal(-1)
    for size in sizes:
        if size is None:
            continue
        try:
            amount = quantity(size)
        except (ValueError, TypeError):
            continue
        if amount > best_amount:
            best, best_amount = size, amount
    return best


def with_floor(plan_storage: str, floor: str | None) -> str:
    """The storage to render: the plan's, or the floor when that is strictly larger.

    The plan's spelling wins on a tie, so an instance that never changed plan renders
    exactly what it rendered before floors existed.
    """
    if floor is None or same(plan_storage, floor):
        return plan_storage
    return floor if largest([plan_storage, floor]) == floor else plan_storage


def same(a: str, b: str) -> bool:
    """Whether two quantities are the same amount (``1Gi`` and ``1024Mi`` are)."""
    try:
        return quantity(a) == quantity(b)
    except (ValueError, TypeError):
        return a == b


def kept_message(plan: str, plan_storage: str, kept: str) -> str:
    """What a tenant is told when a plan's storage is below the instance's floor."""
    return (
        f"Plan {plan} has {plan_storage} of storage, but this instance's volumes keep "
        f"{kept}: volumes never shrink. The other resources follow the plan."
    )
