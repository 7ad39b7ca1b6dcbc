"""Create, find, list and change tenants (municipalities).

Functions take keyword arguments and a session, flush but never commit: the caller owns
the transaction (one request = one transaction, so that a rejected request changes
nothing). This module must not know about HTTP, tokens or roles; who may call what is
decided in ``auth`` and enforced by the adapters.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane.db.locking import lock_row, reread
from controlplane.db.paging import Page, paginate, str_key, uuid_key
from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem, PreconditionFailed
from controlplane.identifiers import normalise_enterprise_number
from controlplane.tenants.errors import TenantExists, TenantInvalid, TenantNotFound
from controlplane.tenants.models import Tenant, TenantStatus
from controlplane.tenants.names import (
    RESERVED_PREFIXES,
    TENANT_SLUG_MAX,
    name_problem,
    reserved_slug,
)

SLUG_MAX = TENANT_SLUG_MAX
_SLUG = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")
_NIS = re.compile(r"[0-9]{5}")
#: Fields an update may change (identity — id, NIS code — never changes).
UPDATABLE = frozenset(
    {
        "name",
        "inhabitants",
        "inhabitants_year",
        "enterprise_number",
        "street",
        "postal_code",
        "city",
        "country",
        "contacts",
        "status",
        "group",
        "max_instances",
        "max_cpu",
        "max_memory",
        "default_target",
        "maintenance_window",
    }
)

NOT_NULL = frozenset({"name", "status", "max_instances", "max_cpu", "max_memory", "country"})


def slug_from_name(name: str) -> str:
    """A DNS label from a municipality name: ``Sint-Niklaas`` → ``sint-niklaas``,
    ``De Panne`` → ``de-panne``, accents dropped (``Hélécine`` → ``helecine``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


def is_slug(value: str) -> bool:
    """Whether ``value`` can name an existing tenant (lookups; older slugs included)."""
    return bool(_SLUG.fullmatch(value))


def slug_problem(slug: str) -> str | None:
    """Why ``slug`` cannot be the slug of a new tenant (None: it can)."""
    problem = name_problem(slug, max_length=SLUG_MAX)
    if problem is None and reserved_slug(slug):
        problem = (
            "is reserved: its namespaces would look like the cluster's own "
            f"(reserved: default, kube, openshift, {', '.join(p + '…' for p in RESERVED_PREFIXES)}"
            ", ingress-nginx, cert-manager, …)"
        )
    return problem


def check_slug(slug: str, location: str = "slug") -> None:
    problem = slug_problem(slug)
    if problem is not None:
        raise TenantInvalid(
            f"{slug!r} cannot be a tenant slug.",
            errors=[ErrorItem(location, problem)],
            hint="Choose another slug with `cityctl tenant create --slug`, or leave it out "
            "to derive it from the name.",
        )


def check_nis_code(nis_code: str, location: str = "nis_code") -> None:
    if not _NIS.fullmatch(nis_code):
        raise TenantInvalid(
            f"{nis_code!r} is not a NIS code.",
            errors=[ErrorItem(location, "a NIS code is five digits, e.g. 44021 for Gent")],
        )


def checked_enterprise_number(value: str, location: str = "enterprise_number") -> str:
    """The ten digits of a KBO/BCE number (mod-97 checked), or TenantInvalid naming it."""
    try:
        return normalise_enterprise_number(value)
    except ValueError as exc:
        raise TenantInvalid(
            f"{value!r} is not a valid enterprise number.",
            errors=[ErrorItem(location, str(exc))],
            hint="Give the KBO/BCE number as on the KBO Public Search, e.g. 0207.451.227.",
        ) from exc


def _checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    checked = dict(fields)
    if checked.get("enterprise_number"):
        checked["enterprise_number"] = checked_enterprise_number(checked["enterprise_number"])
    if checked.get("country"):
        checked["country"] = str(checked["country"]).upper()
    return checked


def get_tenant(session: Session, slug: str) -> Tenant:
    tenant = (
        session.exec(select(Tenant).where(Tenant.slug == slug)).first() if is_slug(slug) else None
    )
    if tenant is None:
        raise TenantNotFound(f"There is no tenant {slug!r}.")
    return tenant


def get_tenant_by_id(session: Session, tenant_id: uuid.UUID) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(f"There is no tenant with id {tenant_id}.")
    return tenant


def list_tenants(
    session: Session,
    *,
    only: uuid.UUID | None = None,
    status: TenantStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Tenant]:
    """Tenants by slug; ``only`` restricts the list to one tenant (tenant roles)."""
    statement = select(Tenant)
    if only is not None:
        statement = statement.where(Tenant.id == only)
    if status is not None:
        statement = statement.where(Tenant.status == status)
    keys = [str_key(col(Tenant.slug), "slug"), uuid_key(col(Tenant.id))]
    return paginate(session, statement, keys, limit=limit, cursor=cursor)


def create_tenant(
    session: Session,
    *,
    name: str,
    nis_code: str,
    slug: str | None = None,
    **fields: Any,
) -> Tenant:
    """A new active tenant; the slug is derived from the name unless given."""
    slug = slug or slug_from_name(name)
    check_slug(slug)
    check_nis_code(nis_code)
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise TenantInvalid(
            "Unknown tenant fields.", errors=[ErrorItem(f, "unknown field") for f in unknown]
        )
    fields = _checked_fields(fields)
    clash = session.exec(
        select(Tenant).where((Tenant.slug == slug) | (Tenant.nis_code == nis_code))
    ).first()
    if clash is not None:
        raise _exists(clash, slug, nis_code)
    tenant = Tenant(slug=slug, name=name, nis_code=nis_code, **fields)
    session.add(tenant)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        # Someone else created it between our check and our insert.
        raise TenantExists(
            f"A tenant with slug {slug!r} or NIS code {nis_code} already exists."
        ) from exc
    return tenant


def _exists(clash: Tenant, slug: str, nis_code: str) -> TenantExists:
    if clash.nis_code == nis_code:
        return TenantExists(
            f"NIS code {nis_code} already belongs to tenant {clash.slug!r}.",
            errors=[ErrorItem("nis_code", "already used")],
            extra={"existing": clash.slug},
        )
    return TenantExists(
        f"The slug {slug!r} is already taken by {clash.name} ({clash.nis_code}).",
        errors=[ErrorItem("slug", "already used")],
        hint="Choose another slug.",
        extra={"existing": clash.slug},
    )


def update_tenant(
    session: Session,
    tenant: Tenant,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None = None,
    live_instances: Callable[[Session, Tenant], int] | None = None,
) -> dict[str, Any]:
    """Apply ``changes``; answer what changed as ``{field: [old, new]}``.

    ``live_instances`` counts the tenant's live instances (provisioning knows them, this
    module does not): a ``max_instances`` below that count is refused, since it would
    leave the tenant over its own limit.

    ``expected_version`` is the client's ``If-Match``: a tenant changed by someone else
    in the meantime is refused rather than silently overwritten. The row is locked and
    re-read first, so concurrent updates are serialised: one version admits one change,
    and each change gets its own version.
    """
    only_if = None if expected_version is None else col(Tenant.version) == expected_version
    # No row means no lock taken: the tenant is gone, or (versions only go up) it moved past
    # the ETag, which the re-read puts on ``tenant`` for the 412 below.
    locked = lock_row(session, Tenant, tenant.id, only_if=only_if)
    if locked is None and reread(session, Tenant, tenant.id) is None:
        raise TenantNotFound(f"There is no tenant {tenant.slug!r}.")
    if expected_version is not None and expected_version != tenant.version:
        raise PreconditionFailed(
            f"Tenant {tenant.slug!r} is at version {tenant.version}, not {expected_version}.",
            hint="Read the tenant again and re-apply your change.",
        )
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise TenantInvalid(
            "These tenant fields cannot be changed.",
            errors=[ErrorItem(f, "cannot be changed") for f in sorted(unknown)],
        )
    changes = _checked_fields(changes)
    nulled = sorted(k for k in NOT_NULL if k in changes and changes[k] is None)
    if nulled:
        raise TenantInvalid(
            "These tenant fields cannot be empty.",
            errors=[ErrorItem(f, "cannot be null") for f in nulled],
        )
    limit = changes.get("max_instances")
    if live_instances is not None and limit is not None and limit < tenant.max_instances:
        live = live_instances(session, tenant)
        if limit < live:
            raise TenantInvalid(
                f"{tenant.slug} has {live} live instances; max_instances cannot be {limit}.",
                errors=[ErrorItem("max_instances", f"must be at least {live}")],
                hint=f"Delete instances first (`cityctl instance delete`), or give "
                f"--max-instances {live} or more.",
            )
    diff = {
        key: [getattr(tenant, key), value]
        for key, value in changes.items()
        if getattr(tenant, key) != value
    }
    if diff:
        for key, (_old, new) in diff.items():
            setattr(tenant, key, new)
        tenant.version += 1
        tenant.updated_at = utcnow()
        session.add(tenant)
        session.flush()
    return diff
