"""What an instance's pinned version means for its municipality: upgrade available,
deprecated and unsupported after a date, or retired.

Derived on read from the published versions (their status and support end) and the
declared upgrade-from ranges; nothing is stored, so a deprecation or a new version shows on
every instance at once. "Upgrade available" is the newest *active* published version that
is newer than the instance's and whose ``upgrade_from`` range accepts the instance's version
(the path admission would allow for an update).

Reads are hot (every instance list and show): :func:`views_for` reads the lifecycle columns
of the services on the page in one statement, without the release documents (which carry
whole template bundles). The one thing it needs from a release, its ``upgrade_from`` range,
is cached per process by release digest: a digest names immutable content, so the cache can
never be stale, while status and support end (which do change) are read every time.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import VersionStatus
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.versions import parse_version, upgrade_refusal
from controlplane.provisioning.models import Instance


@dataclass(frozen=True)
class LifecycleView:
    """The lifecycle of one instance's version, as the API and cityctl show it."""

    upgrade_available: str | None
    deprecated: bool
    support_ends: date | None
    retired: bool
    message: str


@dataclass(frozen=True)
class VersionFacts:
    """What the lifecycle needs of one published version (a light :class:`PublishedVersion`)."""

    version: str
    status: VersionStatus
    support_ends: date | None
    status_message: str | None
    upgrade_from: str


#: ``upgrade_from`` of a release by digest. Published releases never change (only their
#: lifecycle columns do) and the digest covers the whole release, so entries never go stale.
_UPGRADE_FROM: dict[str, str] = {}
_UPGRADE_FROM_LOCK = threading.Lock()
#: Far more than a catalogue publishes; past it the cache starts over rather than grow.
_UPGRADE_FROM_MAX = 10_000


def _upgrade_from_of(release: Mapping[str, Any]) -> str:
    version = release.get("version")
    return str(version.get("upgrade_from", "") if isinstance(version, dict) else "")


def _reachable(current: str, candidate: PublishedVersion | VersionFacts) -> bool:
    spec = (
        candidate.upgrade_from
        if isinstance(candidate, VersionFacts)
        else _upgrade_from_of(candidate.release)
    )
    try:
        # The one upgrade rule, shared with admission and fleet plans (catalog.versions).
        return upgrade_refusal(current, candidate.version, spec) is None
    except (VersionInvalid, VersionRangeInvalid):
        # A malformed stored range offers no upgrade rather than breaking every list.
        return False


def upgrade_target(current: str, versions: Sequence[PublishedVersion | VersionFacts]) -> str | None:
    """The newest active version reachable from ``current`` by one update."""
    candidates = [
        v for v in versions if v.status == VersionStatus.ACTIVE and _reachable(current, v)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda v: parse_version(v.version)).version


def view(
    service: str,
    version: str,
    versions: Sequence[PublishedVersion | VersionFacts],
    *,
    today: date,
) -> LifecycleView:
    """The lifecycle of ``service`` ``version`` among the service's published ``versions``."""
    record = next((v for v in versions if v.version == version), None)
    upgrade = upgrade_target(version, versions)
    status = record.status if record is not None else VersionStatus.ACTIVE
    support_ends = record.support_ends if record is not None else None
    deprecated = status == VersionStatus.DEPRECATED
    retired = status == VersionStatus.RETIRED
    parts: list[str] = []
    if retired:
        parts.append(f"{service} {version} is retired: it is no longer supported")
    elif deprecated:
        if support_ends is None:
            parts.append(f"{service} {version} is deprecated")
        elif support_ends < today:
            parts.append(f"{service} {version} is deprecated, unsupported since {support_ends}")
        else:
            parts.append(f"{service} {version} is deprecated, unsupported after {support_ends}")
    if record is not None and record.status_message and (retired or deprecated):
        parts[-1] += f" ({record.status_message})"
    if upgrade is not None:
        parts.append(f"upgrade available: {upgrade}")
    elif retired or deprecated:
        parts.append("no upgrade path is published yet")
    message = "; ".join(parts) + "." if parts else ""
    if message.startswith("upgrade"):
        # Service names stay as spelled; only the sentence that starts with a word is capitalised.
        message = "U" + message[1:]
    return LifecycleView(
        upgrade_available=upgrade,
        deprecated=deprecated,
        support_ends=support_ends if (deprecated or retired) else None,
        retired=retired,
        message=message,
    )


def published_facts(session: Session, services: Iterable[str]) -> dict[str, list[VersionFacts]]:
    """The lifecycle facts of every published version of ``services``, by service.

    One statement for the lifecycle columns of all of them, plus one for the release
    documents of digests this process has not seen yet (none once warm).
    """
    wanted = set(services)
    facts: dict[str, list[VersionFacts]] = {s: [] for s in wanted}
    if not wanted:
        return facts
    # SQLAlchemy's select: sqlmodel's typed overloads stop at four columns.
    rows = session.execute(
        sa_select(
            col(PublishedVersion.service),
            col(PublishedVersion.version),
            col(PublishedVersion.status),
            col(PublishedVersion.support_ends),
            col(PublishedVersion.status_message),
            col(PublishedVersion.digest),
        ).where(col(PublishedVersion.service).in_(wanted))
    ).all()
    with _UPGRADE_FROM_LOCK:
        missing = {row[5] for row in rows if row[5] not in _UPGRADE_FROM}
    if missing:
        documents = session.exec(
            select(PublishedVersion.digest, PublishedVersion.release).where(
                col(PublishedVersion.service).in_(wanted),
                col(PublishedVersion.digest).in_(missing),
            )
        ).all()
        with _UPGRADE_FROM_LOCK:
            if len(_UPGRADE_FROM) + len(documents) > _UPGRADE_FROM_MAX:
                _UPGRADE_FROM.clear()
            _UPGRADE_FROM.update({d: _upgrade_from_of(release) for d, release in documents})
    with _UPGRADE_FROM_LOCK:
        known = {row[5]: _UPGRADE_FROM.get(row[5], "") for row in rows}
    for service, version, status, support_ends, message, digest in rows:
        facts[service].append(
            VersionFacts(
                version=version,
                status=VersionStatus(status),
                support_ends=support_ends,
                status_message=message,
                upgrade_from=known[digest],
            )
        )
    return facts


def views_for(
    session: Session, instances: Iterable[Instance], *, today: date
) -> dict[uuid.UUID, LifecycleView]:
    """Lifecycle views of many instances: the same few statements for any number of them."""
    rows = list(instances)
    published = published_facts(session, {i.service for i in rows})
    # Instances on a page mostly share a few service versions: work each out once.
    distinct = {(i.service, i.version) for i in rows}
    views = {(s, v): view(s, v, published[s], today=today) for s, v in distinct}
    return {i.id: views[(i.service, i.version)] for i in rows}


def view_for(session: Session, instance: Instance, *, today: date) -> LifecycleView:
    return views_for(session, [instance], today=today)[instance.id]
