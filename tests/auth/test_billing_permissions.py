"""Billing's rows of the permission table (controlplane/auth/policy.py).

Closing a period, reading its closings and setting prices and pools are finance's and the
operator's; reopening is the operator's alone; tenant roles change nothing in billing. The
refusals keep the words the billing routes always answered with.
"""

from __future__ import annotations

import pytest

from controlplane.auth.models import Role
from controlplane.auth.policy import BILLING_WRITES, PERMISSIONS, TENANT_ROLES, Action, Principal
from controlplane.errors import Forbidden

BILLING = {a for a in Action if a.startswith("billing.")}


def test_finance_does_everything_in_billing_but_reopen() -> None:
    assert {a for a in PERMISSIONS[Role.FINANCE] if a in BILLING} == {
        Action.BILLING_CLOSE,
        Action.BILLING_CLOSINGS_READ,
        Action.BILLING_PRICE_WRITE,
        Action.BILLING_POOL_WRITE,
    }
    assert PERMISSIONS[Role.OPERATOR] >= BILLING


@pytest.mark.parametrize("role", sorted(TENANT_ROLES))
def test_tenant_roles_change_nothing_in_billing(role: Role) -> None:
    assert not PERMISSIONS[role] & (BILLING | BILLING_WRITES)


@pytest.mark.parametrize(
    ("role", "action", "detail", "hint"),
    [
        (
            Role.FINANCE,
            Action.BILLING_REOPEN,
            "The role finance may not reopen a billing period.",
            "Reopening a closed period is an operator action; ask a platform operator.",
        ),
        (
            Role.TENANT_ADMIN,
            Action.BILLING_CLOSE,
            "The role tenant-admin may not close a billing period.",
            "Billing changes are for the finance and operator roles.",
        ),
        (
            Role.TENANT_VIEWER,
            Action.BILLING_CLOSINGS_READ,
            "The role tenant-viewer may not read the closing history.",
            "Billing changes are for the finance and operator roles.",
        ),
        (
            Role.TENANT_ADMIN,
            Action.BILLING_PRICE_WRITE,
            "The role tenant-admin may not set prices.",
            "Billing changes are for the finance and operator roles.",
        ),
        (
            Role.TENANT_VIEWER,
            Action.BILLING_POOL_WRITE,
            "The role tenant-viewer may not set cost pools.",
            "Billing changes are for the finance and operator roles.",
        ),
    ],
)
def test_billing_refusals_say_what_was_refused(
    role: Role, action: Action, detail: str, hint: str
) -> None:
    principal = Principal(role=role, tenant_id=None, token_name="t")

    with pytest.raises(Forbidden) as refused:
        principal.check(action)

    assert (refused.value.detail, refused.value.hint) == (detail, hint)


def test_other_refusals_keep_the_generic_words() -> None:
    principal = Principal(role=Role.TENANT_VIEWER, tenant_id=None, token_name="t")

    with pytest.raises(Forbidden) as refused:
        principal.check(Action.RATE_WRITE)

    assert refused.value.detail == "The role tenant-viewer may not change rates."
    assert refused.value.hint == "Ask a platform operator if you need this."
