"""Publishing from catalogue files runs the checks of `catalog validate` and publishes nothing
when they fail: the same YAML traps, renders and refused updates."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from controlplane.catalog.errors import CatalogInvalid, ServiceNotInCatalog
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import (
    PublishOutcome,
    VersionImmutable,
    publish_from_catalog,
    publish_release,
    renders_the_same,
)
from controlplane.catalog.records import PublishedVersion
from controlplane.db.engine import make_engine
from controlplane.errors import InvalidInput
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog
from tests.factories import SqliteTemplate, sqlite_template  # noqa: F401 (fixture)

WEB = "demo/2/10-web.yaml.j2"


@pytest.fixture
def session(sqlite_template: SqliteTemplate, tmp_path: Path) -> Iterator[Session]:  # noqa: F811
    engine = make_engine(sqlite_template.clone(tmp_path))
    try:
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def published(session: Session) -> list[str]:
    return sorted(r.version for r in session.exec(select(PublishedVersion)).all())


def publish(
    session: Session,
    fc: FixtureCatalog,
    service: str | None = None,
    version: str | None = None,
) -> list[PublishOutcome]:
    """Publish the way the API does: with the renderer's checks."""
    results = publish_from_catalog(
        session,
        load_catalog(fc.catalog_dir, fc.templates_dir),
        service=service,
        version=version,
        check_stack=stack_check("1.33"),
        check_update=update_check,
    )
    return [r.outcome for r in results]


def test_a_clean_catalogue_is_published(session: Session, fixture_catalog: FixtureCatalog) -> None:
    assert publish(session, fixture_catalog) == [PublishOutcome.CREATED] * 2
    assert published(session) == ["1.0.0", "1.1.0"]


def test_a_yaml_trap_refuses_the_publish(session: Session, fixture_catalog: FixtureCatalog) -> None:
    line = fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", "replicas: 01")
    with pytest.raises(CatalogInvalid) as caught:
        publish(session, fixture_catalog, service="demo", version="1.0.0")
    assert [e.location for e in caught.value.errors] == [
        f"templates/{WEB}:{line}:13: Deployment/web: spec.replicas"
    ]
    assert "nothing was published" in caught.value.detail
    assert published(session) == []


def test_a_refused_update_refuses_the_publish(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    fixture_catalog.replace_in_template(
        WEB, "  ports:\n    - name: http\n", "  clusterIP: None\n  ports:\n    - name: http\n"
    )
    with pytest.raises(CatalogInvalid) as caught:
        publish(session, fixture_catalog)
    assert [e.location for e in caught.value.errors] == [
        "catalog/demo.yaml: versions[1] 1.1.0, upgrade from 1.0.0: Service/web: spec.clusterIP"
    ]
    assert published(session) == []


def test_without_render_checks_the_static_rules_still_apply(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", "replicas: 01")
    with pytest.raises(CatalogInvalid):
        publish_from_catalog(
            session, load_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir)
        )
    assert published(session) == []


def test_an_unknown_service_or_version_is_not_found_before_validation(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", "replicas: 01")
    with pytest.raises(ServiceNotInCatalog):
        publish(session, fixture_catalog, service="nope")
    with pytest.raises(ServiceNotInCatalog):
        publish(session, fixture_catalog, service="demo", version="9.9.9")


def _digests(session: Session) -> dict[str, str]:
    return {r.version: r.digest for r in session.exec(select(PublishedVersion)).all()}


def test_a_source_refactoring_that_renders_the_same_keeps_the_published_release(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    publish(session, fixture_catalog)
    before = _digests(session)
    bundle_before = (
        session.exec(select(PublishedVersion).where(PublishedVersion.version == "1.1.0"))
        .one()
        .release["bundle"]
    )
    # Move version 1.1.0 to another folder and split its web template into a partial:
    # other source, the same objects.
    source = fixture_catalog.templates_dir / "demo" / "2"
    moved = fixture_catalog.templates_dir / "demo" / "v2"
    source.rename(moved)
    web = (moved / "10-web.yaml.j2").read_text()
    head, _, tail = web.partition("---\n")
    (moved / "_secret.yaml.j2").write_text(head)
    (moved / "10-web.yaml.j2").write_text('{% include "_secret.yaml.j2" %}---\n' + tail)
    fixture_catalog.edit(lambda d: d["versions"][1].update(templates="demo/v2"))

    assert publish(session, fixture_catalog) == [
        PublishOutcome.UNCHANGED,
        PublishOutcome.EQUIVALENT,
    ]
    assert _digests(session) == before
    row = session.exec(select(PublishedVersion).where(PublishedVersion.version == "1.1.0")).one()
    assert row.release["bundle"] == bundle_before  # the published source is what renders
    assert row.release["version"]["templates"] == "demo/2"


def test_a_source_change_that_changes_an_object_is_still_refused(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    publish(session, fixture_catalog)
    fixture_catalog.replace_in_template(
        WEB, "app.kubernetes.io/component: web\ntype", "app.kubernetes.io/component: web2\ntype"
    )
    with pytest.raises(VersionImmutable):
        publish(session, fixture_catalog)


def test_an_equivalent_source_with_new_metadata_is_amended(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    publish(session, fixture_catalog)
    before = _digests(session)
    fixture_catalog.replace_in_template(WEB, "kind: Secret\n", "{# a comment #}kind: Secret\n")
    fixture_catalog.edit(lambda d: d["versions"][1].update(forward_only_migrations=True))
    assert publish(session, fixture_catalog)[1] == PublishOutcome.AMENDED
    row = session.exec(select(PublishedVersion).where(PublishedVersion.version == "1.1.0")).one()
    assert row.digest == before["1.1.0"]
    assert row.to_release().version.forward_only_migrations is True
    assert "{# a comment #}" not in row.release["bundle"]["files"]["10-web.yaml.j2"]


def test_a_changed_object_is_corrected_only_when_named(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    publish(session, fixture_catalog)
    session.commit()
    before = _digests(session)
    fixture_catalog.replace_in_template(
        WEB, "app.kubernetes.io/component: web\ntype", "app.kubernetes.io/component: web2\ntype"
    )
    with pytest.raises(VersionImmutable) as caught:
        publish(session, fixture_catalog)
    assert "--correct demo@" in (caught.value.hint or "")
    session.rollback()
    assert _digests(session) == before

    results = publish_from_catalog(
        session,
        load_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir),
        check_stack=stack_check("1.33"),
        check_update=update_check,
        correct=[("demo", "1.1.0")],
    )
    by_version = {r.record.version: r for r in results}
    assert by_version["1.0.0"].outcome == PublishOutcome.UNCHANGED
    corrected = by_version["1.1.0"]
    assert corrected.outcome == PublishOutcome.CORRECTED
    assert corrected.previous_digest == before["1.1.0"]
    assert _digests(session)["1.1.0"] != before["1.1.0"]
    row = session.exec(select(PublishedVersion).where(PublishedVersion.version == "1.1.0")).one()
    assert "web2" in row.release["bundle"]["files"]["10-web.yaml.j2"]
    assert row.status == "active"  # the lifecycle columns stay


def test_a_correction_of_a_version_not_published_here_is_refused(
    session: Session, fixture_catalog: FixtureCatalog
) -> None:
    publish(session, fixture_catalog)
    with pytest.raises(InvalidInput) as caught:
        publish_from_catalog(
            session,
            load_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir),
            service="demo",
            version="1.0.0",
            correct=[("demo", "1.1.0")],
        )
    assert [e.location for e in caught.value.errors] == ["correct[demo@1.1.0]"]


#: The last commit whose catalogue had one template folder per version (before versions
#: became data): what existing installations have published.
PER_VERSION_FOLDERS = "6db021d"


def test_an_installation_that_published_per_version_folders_republishes_as_equivalent(
    session: Session, tmp_path: Path
) -> None:
    """Versions whose objects are the same stay as published; those issue 19 fixed (the
    defects of the shipped templates) are refused, and corrected when named."""
    from tests.catalog import golden

    try:
        golden._catalogue_of(PER_VERSION_FOLDERS, tmp_path)
    except subprocess.CalledProcessError:
        pytest.skip(f"commit {PER_VERSION_FOLDERS} is not in this clone's history")
    check = stack_check("1.33")
    old = load_catalog(tmp_path / "catalog", tmp_path / "templates")
    # Published as they were then (that catalogue predates today's checks, facts sheets).
    first = [publish_release(session, r) for r in old.releases()]
    assert {r.outcome for r in first} == {PublishOutcome.CREATED}
    published = {(r.record.service, r.record.version) for r in first}
    before = {(r.record.service, r.record.version): r.record.digest for r in first}
    session.commit()

    today = load_catalog()
    changed = {
        (r.name, r.version.version)
        for r in today.releases()
        if (r.name, r.version.version) in published
        and not renders_the_same(
            session.exec(
                select(PublishedVersion).where(
                    PublishedVersion.service == r.name,
                    PublishedVersion.version == r.version.version,
                )
            )
            .one()
            .to_release(),
            r,
            check,
        )
    }
    assert changed  # the defects this branch fixed change objects of published versions
    for service, version in sorted(changed):
        with pytest.raises(VersionImmutable):
            publish_from_catalog(session, today, service=service, version=version)
        session.rollback()

    again = publish_from_catalog(
        session, today, check_stack=check, check_update=update_check, correct=changed
    )
    outcomes = {(r.record.service, r.record.version): r.outcome for r in again}
    assert {outcomes[key] for key in changed} == {PublishOutcome.CORRECTED}
    # Equivalent, or amended: metadata added since then (``data``) is stored, digest kept.
    assert {o for key, o in outcomes.items() if key in published and key not in changed} <= {
        PublishOutcome.EQUIVALENT,
        PublishOutcome.AMENDED,
    }
    # Services added to the catalogue since then publish as new releases.
    assert {o for key, o in outcomes.items() if key not in published} <= {PublishOutcome.CREATED}
    after = {
        (row.service, row.version): row.digest
        for row in session.exec(select(PublishedVersion)).all()
        if (row.service, row.version) in published
    }
    assert {key for key in published if after[key] != before[key]} == changed
