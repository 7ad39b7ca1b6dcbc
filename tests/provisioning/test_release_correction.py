"""A corrected published release reaches the instances that run it (issue 19): the
catalogue replaces the release, the adapter gives each live instance of that version a new
generation (``instances.pick_up_corrected_release``) and the worker renders it into a new
revision. Instances of other versions, and deleted ones, are left alone."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, col, select

from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.publishing import PublishOutcome, find_version, publish_release
from controlplane.provisioning.instances import RELEASE_CORRECTED, pick_up_corrected_release
from controlplane.provisioning.models import Instance, ReconcileRequest, Revision
from tests.provisioning.conftest import CONFIG, Platform, make_worker, tiny_release


def _corrected_release() -> ServiceRelease:
    """Version 1.0.0 with one more key in its ConfigMap: other objects, the same version."""
    release = tiny_release("1.0.0")
    files = dict(release.bundle.files)
    files["10-config.yaml.j2"] = CONFIG + "  note: corrected\n"
    return release.model_copy(update={"bundle": release.bundle.model_copy(update={"files": files})})


def test_instances_of_a_corrected_version_render_it_as_a_new_revision(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    gent = p.tenant("gent", "44021")
    on_old = p.create(gent, "forms")
    on_new = p.create(gent, "other", version="2.0.0")
    going = p.create(gent, "going")
    worker.run_until_idle()
    p.delete(going)
    worker.run_until_idle()

    with Session(p.engine) as session:
        result = publish_release(session, _corrected_release(), correct=True)
        assert result.outcome == PublishOutcome.CORRECTED
        changed = pick_up_corrected_release(session, service="tiny", version="1.0.0")
        assert [i.id for i in changed] == [on_old]
        request = session.exec(
            select(ReconcileRequest).where(ReconcileRequest.instance_id == on_old)
        ).one()
        assert request.reason == RELEASE_CORRECTED
        session.commit()
        digest = find_version(session, "tiny", "1.0.0").digest  # type: ignore[union-attr]
        assert digest == result.record.digest
    assert p.get(on_old).generation == 2
    assert p.get(on_new).generation == 1

    worker.run_until_idle()
    instance = p.get(on_old)
    assert instance.observed_generation == 2
    assert instance.current_revision == 2
    with Session(p.engine) as session:
        revisions = session.exec(
            select(Revision).where(Revision.instance_id == on_old).order_by(col(Revision.number))
        ).all()
    assert [(r.number, r.version) for r in revisions] == [(1, "1.0.0"), (2, "1.0.0")]
    assert revisions[0].digest != revisions[1].digest
    folder = tmp_path / "tree" / "gent" / "forms"
    config = next(f for f in folder.iterdir() if "configmap-settings" in f.name)
    assert "note: corrected" in config.read_text()
    with Session(p.engine) as session:
        assert session.get(Instance, on_new).current_revision == 1  # type: ignore[union-attr]
