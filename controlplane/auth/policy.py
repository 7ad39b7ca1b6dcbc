"""Who may do what: the principal of a request and the authorisation decisions.

One table (:data:`PERMISSIONS`) says which role may perform which action; tenant scoping
is decided by :meth:`Principal.check`. A tenant role that asks for another tenant's
resource gets :class:`NotFound` — never :class:`Forbidden` — so that it cannot even learn
which other tenants or instances exist.

This module must not know about HTTP or the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from controlplane.auth.models import Role
from controlplane.errors import Forbidden, NotFound

TENANT_ROLES = frozenset({Role.TENANT_ADMIN, Role.TENANT_VIEWER})


class Action(StrEnum):
    # Names of permissions, not credentials.
    TENANT_READ = "tenant.read"
    TENANT_WRITE = "tenant.write"
    CATALOG_READ = "catalog.read"
    CATALOG_BUNDLE_READ = "catalog.bundle.read"
    CATALOG_WRITE = "catalog.write"
    INSTANCE_READ = "instance.read"
    INSTANCE_WRITE = "instance.write"
    #: Protect an instance against deletion, or lift the protection (an audited step of its own).
    INSTANCE_PROTECT = "instance.protect"
    #: The initial administrator credentials of an instance, read from its cluster.
    CREDENTIALS_READ = "credentials.read"
    CREDENTIALS_WRITE = "credentials.write"
    TARGET_READ = "target.read"
    TARGET_WRITE = "target.write"
    TOKEN_READ = "token.read"  # noqa: S105
    TOKEN_WRITE = "token.write"  # noqa: S105
    AUDIT_READ = "audit.read"
    FLEET_READ = "fleet.read"
    FLEET_WRITE = "fleet.write"
    #: Finance's VAT rules (plan, pool, service); issued invoices never change with them.
    VAT_RULE_READ = "vat-rule.read"
    VAT_RULE_WRITE = "vat-rule.write"
    #: Metering: unit rates (read by every billing reader) and measured usage imports.
    RATE_READ = "rate.read"
    RATE_WRITE = "rate.write"
    USAGE_WRITE = "usage.write"
    #: Billing periods (docs/billing.md): closing one and reading its closings are finance's;
    #: reopening a closed period is for operators only.
    BILLING_CLOSE = "billing.close"
    BILLING_CLOSINGS_READ = "billing.closings.read"
    BILLING_REOPEN = "billing.reopen"
    #: Finance's dated prices and cost pools (never edited, only added).
    BILLING_PRICE_WRITE = "billing.price.write"
    BILLING_POOL_WRITE = "billing.pool.write"


_READ_ALL = {
    Action.TENANT_READ,
    Action.CATALOG_READ,
    Action.INSTANCE_READ,
    Action.TARGET_READ,
    Action.AUDIT_READ,
}

#: The roles matrix (docs/api.md shows it as a table).
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset(Action),
    Role.FINANCE: frozenset(
        _READ_ALL
        | {Action.VAT_RULE_READ, Action.VAT_RULE_WRITE}
        | {Action.RATE_READ, Action.RATE_WRITE, Action.USAGE_WRITE}
        | {
            Action.BILLING_CLOSE,
            Action.BILLING_CLOSINGS_READ,
            Action.BILLING_PRICE_WRITE,
            Action.BILLING_POOL_WRITE,
        }
    ),
    Role.TENANT_ADMIN: frozenset(
        {
            Action.TENANT_READ,
            Action.CATALOG_READ,
            Action.INSTANCE_READ,
            Action.INSTANCE_WRITE,
            Action.INSTANCE_PROTECT,
            Action.CREDENTIALS_READ,
            Action.CREDENTIALS_WRITE,
            Action.AUDIT_READ,
            Action.VAT_RULE_READ,
            Action.RATE_READ,
        }
    ),
    Role.TENANT_VIEWER: frozenset(
        {
            Action.TENANT_READ,
            Action.CATALOG_READ,
            Action.INSTANCE_READ,
            Action.AUDIT_READ,
            Action.VAT_RULE_READ,
            Action.RATE_READ,
        }
    ),
}

#: Every change under ``/api/v1/billing`` (the API gate refuses early a role with none of them).
BILLING_WRITES = frozenset(
    {
        Action.BILLING_CLOSE,
        Action.BILLING_REOPEN,
        Action.BILLING_PRICE_WRITE,
        Action.BILLING_POOL_WRITE,
        Action.RATE_WRITE,
        Action.USAGE_WRITE,
        Action.VAT_RULE_WRITE,
    }
)

_BILLING_HINT = "Billing changes are for the finance and operator roles."

#: What a refusal says, where the generic "read/change <noun>s" would not say it well.
_REFUSALS: dict[Action, tuple[str, str]] = {
    Action.INSTANCE_PROTECT: (
        "change the deletion protection of instances",
        "Tenant administrators and platform operators protect instances and lift it.",
    ),
    Action.BILLING_CLOSE: ("close a billing period", _BILLING_HINT),
    Action.BILLING_CLOSINGS_READ: ("read the closing history", _BILLING_HINT),
    Action.BILLING_PRICE_WRITE: ("set prices", _BILLING_HINT),
    Action.BILLING_POOL_WRITE: ("set cost pools", _BILLING_HINT),
    Action.BILLING_REOPEN: (
        "reopen a billing period",
        "Reopening a closed period is an operator action; ask a platform operator.",
    ),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, for tenant roles the one tenant, and the token's name."""

    role: Role
    tenant_id: uuid.UUID | None
    token_name: str
    token_id: uuid.UUID | None = None
    token_prefix: str | None = None

    @property
    def actor(self) -> str:
        """How this principal appears in the audit log."""
        return f"{self.token_name}#{self.token_prefix}" if self.token_prefix else self.token_name

    @property
    def is_tenant_bound(self) -> bool:
        return self.role in TENANT_ROLES

    def sees_tenant(self, tenant_id: uuid.UUID) -> bool:
        return not self.is_tenant_bound or self.tenant_id == tenant_id

    def may(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]

    def check(self, action: Action, *, tenant_id: uuid.UUID | None = None) -> None:
        """Allow or raise. Visibility comes first: another tenant's resource is 404."""
        if tenant_id is not None and not self.sees_tenant(tenant_id):
            raise NotFound("The resource does not exist (or is not visible to you).")
        if not self.may(action):
            what, hint = _REFUSALS.get(
                action, (_describe(action), "Ask a platform operator if you need this.")
            )
            raise Forbidden(f"The role {self.role} may not {what}.", hint=hint)


def _describe(action: Action) -> str:
    noun, _, verb = str(action).rpartition(".")
    noun = noun.replace(".", " ")
    return f"{'change' if verb == 'write' else 'read'} {noun if noun.endswith('s') else noun + 's'}"
