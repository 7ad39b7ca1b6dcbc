"""What an instance's pinned version means for its municipality: upgrade available,
deprecated and unsupported after a date, or retired.

Derived on read from the published versions (their status and support end) and the
declared upgrade-from ranges; nothing is stored, so a deprecation or a new version shows on
every instance at once. "Upgrade available" is the newest *active* published version that
is newer than the instance's and whose ``upgrade_from`` range accepts the instance's version
(the path admission would allow for an update).

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import VersionStatus
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.versions import matches, parse_version
from controlplane.provisioning.models import Instance


@dataclass(frozen=True)
class LifecycleView:
    """The lifecycle of one instance's version, as the API and cityctl show it."""

    upgrade_available: str | None
    deprecated: bool
    support_ends: date | None
    retired: bool
    message: str


def _newer(version: str, than: str) -> bool:
    try:
        return parse_version(version) > parse_version(than)
    except VersionInvalid:
        return False


def _reachable(current: str, candidate: PublishedVersion) -> bool:
    spec = str(candidate.release.get("version", {}).get("upgrade_from", ""))
    try:
        return matches(current, spec)
    except (VersionInvalid, VersionRangeInvalid):
        # A malformed stored range offers no upgrade rather than breaking every list.
        return False


def upgrade_target(current: str, versions: Sequence[PublishedVersion]) -> str | None:
    """The newest active version reachable from ``current`` by one update."""
    candidates = [
        v
        for v in versions
        if v.status == VersionStatus.ACTIVE
        and _newer(v.version, current)
        and _reachable(current, v)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda v: parse_version(v.version)).version


def view(
    service: str, version: str, versions: Sequence[PublishedVersion], *, today: date
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


def views_for(
    session: Session, instances: Iterable[Instance], *, today: date
) -> dict[uuid.UUID, LifecycleView]:
    """Lifecycle views of many instances, with one query per service involved."""
    rows = list(instances)
    services = {i.service for i in rows}
    published: dict[str, list[PublishedVersion]] = {s: [] for s in services}
    if services:
        for record in session.exec(
            select(PublishedVersion).where(col(PublishedVersion.service).in_(services))
        ).all():
            published[record.service].append(record)
    return {i.id: view(i.service, i.version, published[i.service], today=today) for i in rows}


def view_for(session: Session, instance: Instance, *, today: date) -> LifecycleView:
    return views_for(session, [instance], today=today)[instance.id]
