"""The host name of an instance: decided at admission, unique across all tenants.

A tenant may answer on host names in its own zone (``*.<tenant>.<platform domain>``) and in
the domains an operator granted it (``controlplane.tenants.domains``); nothing else. The
``hostname`` parameter names one; left empty, the instance gets
``<instance>.<tenant>.<platform domain>``. The decision is stored on the instance (unique
among live instances, enforced by the database) and handed to the renderer, so that
releases whose templates were frozen with the older, ambiguous default render it too.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from controlplane.catalog.models import ServiceRelease
from controlplane.errors import Conflict, ErrorItem, InvalidInput
from controlplane.provisioning.models import Instance
from controlplane.tenants.domains import granted_to, tenant_zone
from controlplane.tenants.models import Tenant
from controlplane.tenants.names import default_hostname, hostname_problem, within

LOCATION = "parameters.hostname"


class HostnameNotAllowed(InvalidInput):
    """The instance may not answer on this host name."""

    title = "Host name not allowed"
    code = "hostname_not_allowed"


class HostnameTaken(Conflict):
    """Another live instance already answers on this host name."""

    title = "Host name taken"
    code = "hostname_taken"


def declares_hostname(release: ServiceRelease) -> bool:
    properties = release.parameters.get("properties")
    return isinstance(properties, Mapping) and "hostname" in properties


def _explicit(parameters: Mapping[str, Any] | None) -> str | None:
    value = (parameters or {}).get("hostname")
    return value if isinstance(value, str) and value else None


def decide(
    session: Session,
    *,
    tenant: Tenant,
    instance_name: str,
    release: ServiceRelease,
    parameters: Mapping[str, Any],
    current: Instance | None = None,
) -> str | None:
    """The host name the instance answers on, checked: allowed for the tenant and free.

    A host name the instance already has stays allowed (a domain granted before and since
    removed does not block a plan change); a change of it is checked like a new one.
    """
    if not declares_hostname(release):
        return None
    explicit = _explicit(parameters)
    if explicit is None:
        if current is not None and current.hostname and _explicit(current.parameters) is None:
            hostname = current.hostname  # its default stays (older rows: the older default)
        else:
            hostname = default_hostname(tenant.slug, instance_name)
    else:
        hostname = explicit
        if current is None or hostname != current.hostname:
            _check_allowed(session, tenant, hostname)
    check_free(session, hostname, current.id if current is not None else None, tenant)
    return hostname


def _check_allowed(session: Session, tenant: Tenant, hostname: str) -> None:
    problem = hostname_problem(hostname)
    if problem is not None:
        raise HostnameNotAllowed(
            f"{hostname!r} is not a host name.", errors=[ErrorItem(LOCATION, problem)]
        )
    zone = tenant_zone(tenant)
    domains = granted_to(session, tenant)
    if within(hostname, zone) or any(within(hostname, domain) for domain in domains):
        return
    allowed = ", ".join([f"*.{zone}", *domains])
    raise HostnameNotAllowed(
        f"Tenant {tenant.slug!r} may not use the host name {hostname!r}.",
        errors=[
            ErrorItem(
                LOCATION,
                f"not under {zone} nor under a domain granted to {tenant.slug} "
                f"(allowed: {allowed})",
            )
        ],
        hint=f"Leave `hostname` empty for the default, use a host under {zone}, or ask an "
        f"operator to grant the domain: `cityctl tenant domain add {tenant.slug} <domain>`.",
    )


def check_free(
    session: Session, hostname: str, instance_id: uuid.UUID | None, tenant: Tenant
) -> None:
    statement = select(Instance.id, Instance.tenant_id, Instance.name).where(
        Instance.hostname == hostname, col(Instance.deleted_at).is_(None)
    )
    if instance_id is not None:
        statement = statement.where(Instance.id != instance_id)
    other = session.exec(statement).first()
    if other is not None:
        raise taken(hostname, tenant, other[2] if other[1] == tenant.id else None)


def taken(hostname: str, tenant: Tenant, own_instance: str | None = None) -> HostnameTaken:
    # Another tenant's instance is not named: a tenant must not learn about it.
    whose = f"instance {own_instance!r}" if own_instance else "another instance"
    return HostnameTaken(
        f"The host name {hostname!r} is already used by {whose}.",
        errors=[ErrorItem(LOCATION, "already used by a live instance")],
        hint="Choose another `hostname`, or leave it empty for the default "
        "(`cityctl instance update <name> --set hostname=…`); a domain of your own needs "
        f"`cityctl tenant domain add {tenant.slug} <domain>` by an operator.",
    )


class DomainInUse(Conflict):
    """Live instances still answer on host names in this domain."""

    title = "Domain in use"
    code = "domain_in_use"


def check_domain_unused(session: Session, tenant: Tenant, domain: str) -> None:
    """Refuse to take back a domain the tenant's live instances still answer on."""
    rows = session.exec(
        select(Instance.name, Instance.hostname).where(
            Instance.tenant_id == tenant.id,
            col(Instance.deleted_at).is_(None),
            col(Instance.hostname).is_not(None),
        )
    ).all()
    users = sorted(name for name, hostname in rows if hostname and within(hostname, domain))
    if users:
        raise DomainInUse(
            f"Tenant {tenant.slug!r} still uses {domain!r} for: {', '.join(users)}.",
            errors=[ErrorItem("domain", f"used by instance {name}") for name in users],
            hint="Give those instances another `hostname` first "
            "(`cityctl instance update <name> --set hostname=…`).",
        )
