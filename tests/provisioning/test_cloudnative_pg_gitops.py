"""A GitOps target that declares ``cloudnative-pg`` with a backup destination: the reconciled
tree holds the CloudNativePG ``Cluster``, ``ScheduledBackup`` and the Barman Cloud Plugin's
``ObjectStore``, and the object store's
access keys only sealed (``backup-object-store`` as a SealedSecret), never in plain text in the
tree, the database or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.db.engine import make_engine
from controlplane.provisioning.models import Phase, Target, TargetKind
from tests.provisioning.conftest import make_platform, make_worker, publish

ACCESS_KEY, SECRET_KEY = "AKIAGITOPSTIER", "gitops-tier-store-secret-0123"


def test_the_tree_has_the_cluster_and_only_sealed_store_keys(
    tmp_path: Path, sealing_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = tmp_path / "backup.env"
    store.write_text(f"ACCESS_KEY_ID={ACCESS_KEY}\nSECRET_ACCESS_KEY={SECRET_KEY}\n")
    database = tmp_path / "cp.db"
    engine = make_engine(f"sqlite:///{database}")
    config = {
        "path": str(tmp_path / "tree"),
        "sealing_cert": str(sealing_dir / "sealing.crt"),
        "backup_destination": "s3://city-backups/gent",
        "backup_credentials_file": str(store),
    }
    platform = make_platform(engine, kind=TargetKind.GITOPS, config=config)
    release = next(r for r in load_catalog().releases() if r.name == "open-zaak")
    with Session(engine) as session:
        publish(session, release)
        target = session.exec(select(Target)).one()
        target.capabilities = ["cloudnative-pg"]
        session.add(target)
        session.commit()
    iid = platform.create(
        platform.tenant("gent", "44021"),
        "zaken",
        service=release.name,
        version=release.version.version,
        plan=release.plans[0].name,
    )
    make_worker(platform).run_until_idle()
    assert platform.get(iid).phase == Phase.COMMITTED, platform.get(iid).message
    engine.dispose()

    files = [f for f in (tmp_path / "tree").rglob("*") if f.is_file() and ".git" not in f.parts]
    docs = [d for f in files if f.suffix == ".yaml" for d in yaml.safe_load_all(f.read_text()) if d]
    named = {(d["kind"], d["metadata"]["name"]) for d in docs if "metadata" in d}
    assert ("Cluster", "postgres") in named
    assert ("ScheduledBackup", "postgres-daily") in named
    assert ("ObjectStore", "postgres") in named
    assert ("SealedSecret", "backup-object-store") in named
    assert ("StatefulSet", "postgres") not in named
    for text in [f.read_bytes() for f in [*files, *tmp_path.glob("cp.db*")]]:
        assert SECRET_KEY.encode() not in text
        assert ACCESS_KEY.encode() not in text
    assert SECRET_KEY not in caplog.text
