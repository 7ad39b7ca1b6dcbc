"""Publish service versions and manage their lifecycle (active → deprecated → retired).

A published version never changes what it renders: publishing the same content again is a
no-op, and different content under an existing version is refused (:class:`VersionImmutable`),
so that every instance can be re-rendered or rolled back to exactly what it ran. Afterwards
only the lifecycle columns (status, support end, message) change, and the release's
metadata (entry points, where the admin credentials are, forward-only migrations, plans'
deletion protection: fields the digest leaves out) may be amended by publishing it again.

The catalogue's *source* of a published version may still be reorganised (templates moved
into shared components, versions sharing one template folder): publishing from the files
then finds a different digest, renders both releases for every plan, and when every object
is the same keeps the published release as it is (outcome ``equivalent``). A version whose
objects differ is refused as before, unless the caller names it as a *correction*
(``correct``): then the published release is replaced by the candidate (outcome
``corrected``, new digest). That is for a published release that is wrong (a broken
template every instance of the version renders); the adapter that asks for it audits it
with a reason and makes the version's instances render the corrected release.

Publishing from the catalogue files runs the checks of ``controlplane catalog validate``
on the services it publishes first (``catalog.validation.check_services``): a catalogue
that fails validation publishes nothing.

This module must not know about HTTP, roles or instances.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from semver import Version
from sqlmodel import Session, col, select

from controlplane.catalog.errors import CatalogInvalid, ServiceNotInCatalog
from controlplane.catalog.loading import Catalog
from controlplane.catalog.models import (
    METADATA_FIELDS,
    METADATA_PLAN_FIELDS,
    METADATA_VERSION_FIELDS,
    ServiceRelease,
    VersionStatus,
)
from controlplane.catalog.records import PublishedVersion
from controlplane.catalog.transitions import UpdateCheck
from controlplane.catalog.validation import StackCheck, check_services, example_parameters
from controlplane.db.paging import Page, check_limit, decode_cursor, encode_cursor, str_key
from controlplane.errors import Conflict, ControlPlaneError, ErrorItem, InvalidInput, NotFound


class VersionImmutable(Conflict):
    """This version is already published with different content; published versions never change."""

    title = "Published version is immutable"
    code = "version_immutable"


class VersionNotPublished(NotFound):
    """This service version is not published."""

    title = "Version not published"
    code = "version_not_published"


class LifecycleInvalid(Conflict):
    """This lifecycle change is not possible from the version's current status."""

    title = "Invalid lifecycle change"
    code = "lifecycle_invalid"


class LastUsableVersion(Conflict):
    """Retiring this version would leave the service's live instances without any version
    that new instances (or their upgrades) can use."""

    title = "Last usable version"
    code = "last_usable_version"


class PublishOutcome(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    #: Same digest, new metadata (``ServiceRelease.metadata``): stored, digest unchanged.
    AMENDED = "amended"
    #: Other source (template files, folder), the same objects for every plan: the
    #: published release is kept unchanged.
    EQUIVALENT = "equivalent"
    #: Other objects under a published version, replaced on purpose (``correct``): new
    #: digest, the lifecycle columns kept.
    CORRECTED = "corrected"


@dataclass(frozen=True)
class PublishResult:
    record: PublishedVersion
    outcome: PublishOutcome
    #: The digest the release had before a correction (``CORRECTED`` only).
    previous_digest: str | None = None


#: ``(service, version)`` pairs the caller corrects on purpose.
Corrections = Collection[tuple[str, str]]

CORRECT_HINT = (
    "Publish the change as a new version (bump the version number). If the published "
    "release itself is wrong and every instance of it must get the fix, correct it: "
    "`cityctl catalog publish --correct {service}@{version} --reason TEXT` (operators; "
    'docs/catalog.md, "Correcting a published version").'
)


def publish_release(
    session: Session,
    release: ServiceRelease,
    *,
    published_by: str | None = None,
    check_stack: StackCheck | None = None,
    correct: bool = False,
) -> PublishResult:
    """Publish one release; see the module docstring for what happens to an existing version.

    ``check_stack`` renders a release for one plan (``rendering.catalog_checks``); without
    it a version whose source changed cannot be shown equivalent and is refused, or
    replaced when ``correct``.
    """
    digest = release.digest
    existing = find_version(session, release.name, release.version.version)
    if (
        existing is not None
        and existing.digest != digest
        and check_stack is not None
        and renders_the_same(existing.to_release(), release, check_stack)
    ):
        return _keep_equivalent(session, existing, release)
    if existing is not None:
        if existing.digest == digest:
            if existing.to_release().metadata() == release.metadata():
                return PublishResult(existing, PublishOutcome.UNCHANGED)
            # Equal digests: everything that renders is equal, so the whole document may
            # be replaced; the lifecycle columns stay as they are.
            existing.release = release.model_dump(mode="json")
            session.add(existing)
            session.flush()
            return PublishResult(existing, PublishOutcome.AMENDED)
        if correct:
            return _correct(session, existing, release)
        raise VersionImmutable(
            f"{release.name} {release.version.version} is already published with digest "
            f"{existing.digest}; this content has digest {digest}.",
            hint=CORRECT_HINT.format(service=release.name, version=release.version.version),
            extra={"published_digest": existing.digest, "digest": digest},
        )
    record = PublishedVersion(
        service=release.name,
        version=release.version.version,
        release=release.model_dump(mode="json"),
        digest=digest,
        status=release.version.status,
        support_ends=release.version.support_ends,
        published_by=published_by,
    )
    session.add(record)
    session.flush()
    return PublishResult(record, PublishOutcome.CREATED)


def _correct(
    session: Session, existing: PublishedVersion, release: ServiceRelease
) -> PublishResult:
    """Replace the published release (digest included); the lifecycle columns stay."""
    previous = existing.digest
    existing.release = release.model_dump(mode="json")
    existing.digest = release.digest
    session.add(existing)
    session.flush()
    return PublishResult(existing, PublishOutcome.CORRECTED, previous_digest=previous)


def _keep_equivalent(
    session: Session, existing: PublishedVersion, release: ServiceRelease
) -> PublishResult:
    """Keep the published bundle; take the candidate's metadata if that changed too."""
    stored = existing.to_release()
    if stored.metadata() == release.metadata():
        return PublishResult(existing, PublishOutcome.EQUIVALENT)
    version_metadata = {f: getattr(release.version, f) for f in METADATA_VERSION_FIELDS}
    # ``renders_the_same`` found the plans equal but for their metadata, in the same order.
    plans = [
        kept.model_copy(update={f: getattr(given, f) for f in METADATA_PLAN_FIELDS})
        for kept, given in zip(stored.plans, release.plans, strict=True)
    ]
    amended = stored.model_copy(
        update={
            **{f: getattr(release, f) for f in METADATA_FIELDS},
            "version": stored.version.model_copy(update=version_metadata),
            "plans": plans,
        }
    )
    existing.release = amended.model_dump(mode="json")
    session.add(existing)
    session.flush()
    return PublishResult(existing, PublishOutcome.AMENDED)


def renders_the_same(
    published: ServiceRelease, candidate: ServiceRelease, check_stack: StackCheck
) -> bool:
    """Whether two releases of one version differ only in their template source.

    Everything but the bundle and its folder must be equal (plans, parameters, images,
    network …: they are data, compared as data), and every plan must render the same
    objects (in any order) with the parameters validation uses.
    """
    # Metadata may differ too: it is amended, not compared.
    source: Any = {
        "bundle": True,
        **dict.fromkeys(METADATA_FIELDS, True),
        "version": {"templates", *METADATA_VERSION_FIELDS},
        "plans": {"__all__": set(METADATA_PLAN_FIELDS)},
    }
    if published.model_dump(mode="json", exclude=source) != candidate.model_dump(
        mode="json", exclude=source
    ):
        return False
    parameters = example_parameters(published.parameters)
    try:
        return all(
            _by_id(check_stack(published, plan, parameters))
            == _by_id(check_stack(candidate, plan, parameters))
            for plan in published.plans
        )
    except ControlPlaneError:
        return False  # one of them does not render: not the same


def _by_id(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    """The objects by apiVersion, kind and name. The order they come in is left out: the
    published release is kept, so it is the one that keeps rendering in its order."""
    return {(o["apiVersion"], o["kind"], o["metadata"]["name"]): o for o in objects}


def publish_from_catalog(
    session: Session,
    catalog: Catalog,
    *,
    service: str | None = None,
    version: str | None = None,
    published_by: str | None = None,
    check_stack: StackCheck | None = None,
    check_update: UpdateCheck | None = None,
    correct: Corrections = (),
) -> list[PublishResult]:
    """Publish from the catalogue files: one version, every version of one service, or all.

    ``correct`` names the published versions whose release may be replaced
    (:class:`PublishOutcome` ``CORRECTED``); each must be among the versions published
    here (:class:`InvalidInput` otherwise, before anything is checked or published).

    The services concerned are validated first, as ``controlplane catalog validate`` does:
    the static rules and YAML traps always, renders and refused updates between plans and
    versions with ``check_stack`` and ``check_update`` (``rendering.catalog_checks``).
    Any error raises :class:`CatalogInvalid` and nothing is published. A whole service is
    checked even for one version, since its upgrades involve the other versions.
    """
    if service is None:
        if version is not None:
            raise InvalidInput(
                "A version needs a service.",
                errors=[ErrorItem("version", "give `service` as well, or neither")],
            )
        names = sorted(catalog.services)
    else:
        catalog.version(service, version)  # an unknown service or version: not found
        names = [service]
    wanted = set(correct)
    if wanted:
        covered = {
            (name, v.version)
            for name in names
            for v in catalog.definition(name).versions
            if version is None or v.version == version
        }
        check_corrections(wanted, covered)
    report = check_services(catalog, names, check_stack=check_stack, check_update=check_update)
    if report.errors:
        raise CatalogInvalid(
            f"The catalogue has {len(report.errors)} error(s); nothing was published.",
            errors=report.errors,
            hint="Run `controlplane catalog validate` for the full check, fix, publish again.",
        )
    if service is None:
        releases = catalog.releases()
    elif version is None:
        definition = catalog.definition(service)
        releases = [catalog.release(service, v.version) for v in definition.versions]
    else:
        releases = [catalog.release(service, version)]
    return [
        publish_release(
            session,
            r,
            published_by=published_by,
            check_stack=check_stack,
            correct=(r.name, r.version.version) in wanted,
        )
        for r in releases
    ]


def check_corrections(wanted: Corrections, covered: Collection[tuple[str, str]]) -> None:
    """Refuse corrections of versions this publish does not include (a typo corrects nothing)."""
    stray = sorted(set(wanted) - set(covered))
    if stray:
        raise InvalidInput(
            "A correction names a version this publish does not include.",
            errors=[
                ErrorItem(f"correct[{service}@{version}]", "not among the versions published")
                for service, version in stray
            ],
            hint="Name SERVICE@VERSION exactly as in the catalogue, and publish that service "
            "(or everything).",
        )


def find_version(session: Session, service: str, version: str) -> PublishedVersion | None:
    return session.exec(
        select(PublishedVersion).where(
            PublishedVersion.service == service, PublishedVersion.version == version
        )
    ).first()


def get_version(session: Session, service: str, version: str) -> PublishedVersion:
    record = find_version(session, service, version)
    if record is None:
        known = [v.version for v in versions_of(session, service)]
        if not known:
            raise ServiceNotInCatalog(f"There is no published service {service!r}.")
        raise VersionNotPublished(
            f"{service} {version} is not published.", hint=f"Published: {', '.join(known)}."
        )
    return record


def versions_of(session: Session, service: str) -> list[PublishedVersion]:
    """All published versions of a service, oldest first (semver order)."""
    rows = session.exec(select(PublishedVersion).where(PublishedVersion.service == service)).all()
    return sorted(rows, key=lambda r: version_key(r.version))


def newest_active(session: Session, service: str) -> PublishedVersion:
    """The newest version a new instance may use (active; deprecated only if nothing else)."""
    rows = versions_of(session, service)
    if not rows:
        raise ServiceNotInCatalog(f"There is no published service {service!r}.")
    for wanted in (VersionStatus.ACTIVE, VersionStatus.DEPRECATED):
        usable = [r for r in rows if r.status == wanted]
        if usable:
            return usable[-1]
    raise LifecycleInvalid(
        f"Every published version of {service!r} is retired.",
        hint="An operator must publish a new version.",
    )


def list_services(session: Session, *, limit: int = 50, cursor: str | None = None) -> Page[str]:
    """Names of published services, in order (keyset on the name)."""
    check_limit(limit)
    statement = select(PublishedVersion.service).distinct()
    if cursor:
        (after,) = decode_cursor(cursor, [str_key(col(PublishedVersion.service), "service")])
        statement = statement.where(col(PublishedVersion.service) > after)
    names = list(session.exec(statement.order_by(col(PublishedVersion.service)).limit(limit + 1)))
    more = len(names) > limit
    names = names[:limit]
    return Page(items=names, next_cursor=encode_cursor([names[-1]]) if more else None)


def deprecate(
    session: Session,
    record: PublishedVersion,
    *,
    support_ends: date | None,
    message: str | None,
) -> PublishedVersion:
    if record.status == VersionStatus.RETIRED:
        raise LifecycleInvalid(
            f"{record.service} {record.version} is retired; it cannot be deprecated again.",
            hint=f"Undo the retirement with `cityctl catalog reactivate {record.service} "
            f"{record.version}` first.",
        )
    record.status = VersionStatus.DEPRECATED
    record.support_ends = support_ends
    record.status_message = message
    session.add(record)
    session.flush()
    return record


#: Statuses a new instance may use (deprecated ones with a warning).
USABLE = frozenset({VersionStatus.ACTIVE, VersionStatus.DEPRECATED})


def is_last_usable(session: Session, record: PublishedVersion) -> bool:
    """Whether ``record`` is the only version of its service that new instances can use."""
    if record.status not in USABLE:
        return False
    others = [
        r
        for r in versions_of(session, record.service)
        if r.version != record.version and r.status in USABLE
    ]
    return not others


def retire(
    session: Session,
    record: PublishedVersion,
    *,
    message: str | None,
    live_instances: int = 0,
    force: bool = False,
) -> PublishedVersion:
    """Retire a version: new instances refuse it; existing ones keep running it.

    ``live_instances`` is the number of live instances of the service (any version; the
    caller counts them, this module does not know instances). Retiring the last usable
    version of a service that has some is refused unless ``force``: its tenants could
    then neither create instances nor upgrade to anything.
    """
    if not force and live_instances > 0 and is_last_usable(session, record):
        raise LastUsableVersion(
            f"{record.service} {record.version} is the last version new instances can use, "
            f"and {live_instances} live instance(s) of {record.service} exist.",
            hint="Publish a newer version first (`cityctl catalog publish`), or retire it "
            f"anyway with `cityctl catalog retire {record.service} {record.version} --force`.",
            extra={"live_instances": live_instances},
        )
    record.status = VersionStatus.RETIRED
    if message is not None:
        record.status_message = message
    session.add(record)
    session.flush()
    return record


def reactivate(
    session: Session, record: PublishedVersion, *, message: str | None
) -> PublishedVersion:
    """Undo a retirement: back to deprecated if the version has a support end, else active.

    The message replaces the retirement's (which usually says "upgrade to ...").
    """
    if record.status != VersionStatus.RETIRED:
        raise LifecycleInvalid(
            f"{record.service} {record.version} is {record.status}; only a retired "
            "version can be reactivated."
        )
    record.status = (
        VersionStatus.DEPRECATED if record.support_ends is not None else VersionStatus.ACTIVE
    )
    record.status_message = message
    session.add(record)
    session.flush()
    return record


def version_key(version: str) -> Version:
    try:
        return Version.parse(version)
    except ValueError:
        return Version(0)
