"""DNS domains an operator grants to a tenant, so that its instances may answer on them.

A tenant's instances may always use host names under its own zone of the platform domain
(``<anything>.<tenant>.<platform domain>``); any other host name needs a granted domain:
``gent.be`` allows ``gent.be`` and every subdomain of it. A domain (and everything under
it) belongs to one tenant at most, and the platform's own domain is never granted.

Functions flush but never commit. This module must not know about HTTP, roles or
instances (whether a domain is still in use is asked by the caller, in provisioning).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane.errors import Conflict, ErrorItem, InvalidInput, NotFound
from controlplane.tenants.models import Tenant, TenantDomain
from controlplane.tenants.names import PLATFORM_DOMAIN, hostname_problem, within


class DomainInvalid(InvalidInput):
    """This is not a domain that can be granted."""

    title = "Invalid domain"
    code = "domain_invalid"


class DomainTaken(Conflict):
    """The domain (or one above or below it) is granted to another tenant."""

    title = "Domain taken"
    code = "domain_taken"


class DomainNotGranted(NotFound):
    """The tenant has no such granted domain."""

    title = "Domain not granted"
    code = "domain_not_granted"


def tenant_zone(tenant: Tenant) -> str:
    """The tenant's own zone under the platform domain (always allowed, never granted)."""
    return f"{tenant.slug}.{PLATFORM_DOMAIN}"


def check_domain(domain: str, location: str = "domain") -> None:
    problem = hostname_problem(domain)
    if problem is None and (within(domain, PLATFORM_DOMAIN) or within(PLATFORM_DOMAIN, domain)):
        problem = (
            f"is (or contains) the platform domain {PLATFORM_DOMAIN}; hosts under "
            "<tenant>.<platform domain> need no grant"
        )
    if problem is not None:
        raise DomainInvalid(
            f"{domain!r} cannot be granted.",
            errors=[ErrorItem(location, problem)],
            hint="Give a lowercase domain the municipality controls, e.g. "
            "`cityctl tenant domain add gent gent.be`.",
        )


def list_domains(session: Session, tenant: Tenant) -> list[TenantDomain]:
    return list(
        session.exec(
            select(TenantDomain)
            .where(TenantDomain.tenant_id == tenant.id)
            .order_by(col(TenantDomain.domain))
        ).all()
    )


def granted_to(session: Session, tenant: Tenant) -> list[str]:
    return [row.domain for row in list_domains(session, tenant)]


def grant_domain(
    session: Session, *, tenant: Tenant, domain: str, granted_by: str = ""
) -> tuple[TenantDomain, bool]:
    """Grant ``domain`` to ``tenant``; answers the grant and whether it is new (idempotent)."""
    check_domain(domain)
    overlapping = [
        row
        for row in session.exec(select(TenantDomain)).all()
        if within(row.domain, domain) or within(domain, row.domain)
    ]
    for row in overlapping:
        if row.tenant_id == tenant.id and row.domain == domain:
            return row, False
    others = [row for row in overlapping if row.tenant_id != tenant.id]
    if others:
        raise _taken(domain, others[0].domain)
    grant = TenantDomain(tenant_id=tenant.id, domain=domain, granted_by=granted_by[:200])
    session.add(grant)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # granted by someone else in the meantime
        raise _taken(domain, domain) from exc
    return grant, True


def _taken(domain: str, clash: str) -> DomainTaken:
    # The other tenant is not named: a tenant must not learn about another through this.
    return DomainTaken(
        f"{domain!r} cannot be granted: {clash!r} is granted to another tenant.",
        errors=[ErrorItem("domain", f"overlaps {clash}, granted to another tenant")],
        hint="`cityctl tenant domain remove <tenant> <domain>` on the other tenant first, "
        "if the domain really moved.",
    )


def find_grant(session: Session, *, tenant: Tenant, domain: str) -> TenantDomain:
    row = session.exec(
        select(TenantDomain).where(
            TenantDomain.tenant_id == tenant.id, TenantDomain.domain == domain
        )
    ).first()
    if row is None:
        raise DomainNotGranted(
            f"Tenant {tenant.slug!r} has no granted domain {domain!r}.",
            hint=f"`cityctl tenant domain list {tenant.slug}` lists its domains.",
        )
    return row


def revoke_domain(session: Session, *, grant: TenantDomain) -> None:
    session.delete(grant)
    session.flush()
