"""The lifecycle on the GitOps target, at the domain level (desired state recorded the way
the API records it, a worker reconciling)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from sqlmodel import Session, select

from controlplane.provisioning.models import Phase, Revision, UsageEvent
from controlplane.provisioning.targets.gitops import KUSTOMIZATION
from controlplane.provisioning.targets.sealing import hybrid_decrypt, load_private_key, strict_label
from controlplane.rendering.secrets import derive_secret
from tests.provisioning.conftest import SERVER_SECRET, Platform, make_worker


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_create_upgrade_rollback_delete(gitops_platform: Platform, tmp_path: Path) -> None:
    p = gitops_platform
    worker = make_worker(p)
    gent = p.tenant("gent", "44021")
    iid = p.create(gent, "forms")
    worker.run_until_idle()

    instance = p.get(iid)
    assert instance.phase == Phase.COMMITTED
    assert instance.observed_generation == 1
    folder = tmp_path / "tree" / "gent" / "forms"
    names = sorted(_files(folder))
    assert KUSTOMIZATION in names
    assert any("configmap-legacy" in n for n in names)
    assert any("sealedsecret" in n or "secret-credentials" in n for n in names)

    p.change(iid, version="2.0.0")
    worker.run_until_idle()
    assert not any("legacy" in n for n in _files(folder)), "upgrade prunes the dropped object"
    assert p.get(iid).current_revision == 2

    p.change(iid, version="1.0.0")
    worker.run_until_idle()
    assert any("legacy" in n for n in _files(folder)), "rollback brings it back"
    with Session(p.engine) as session:
        revisions = session.exec(select(Revision).order_by(Revision.number)).all()
        assert [r.number for r in revisions] == [1, 2, 3]
        assert revisions[2].rollback_of == 1

    p.change(iid, plan="large")
    worker.run_until_idle()
    p.delete(iid)
    worker.run_until_idle()
    instance = p.get(iid)
    assert instance.phase == Phase.DELETED
    assert instance.deleted_at is not None
    assert not folder.exists()
    with Session(p.engine) as session:
        kinds = [e.kind for e in session.exec(select(UsageEvent).order_by(UsageEvent.at)).all()]
    assert kinds == ["started", "plan_changed", "stopped"]


def test_noop_rewrites_nothing_and_drift_is_repaired(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    iid = p.create(p.tenant("brugge", "31005"), "portal")
    worker.run_until_idle()
    folder = tmp_path / "tree" / "brugge" / "portal"
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in folder.iterdir()}

    p.make_all_due()
    assert worker.run_until_idle() == 1
    after = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in folder.iterdir()}
    assert after == before
    with Session(p.engine) as session:
        assert len(session.exec(select(Revision)).all()) == 1

    victim = next(f for f in folder.iterdir() if "configmap-settings" in f.name)
    victim.write_text(victim.read_text().replace("hallo", "hacked"))
    (next(f for f in folder.iterdir() if "legacy" in f.name)).unlink()
    p.make_all_due()
    worker.run_until_idle()
    assert "hallo" in victim.read_text()
    assert any("legacy" in f.name for f in folder.iterdir())
    assert p.get(iid).current_revision == 1


def test_secrets_are_sealed_and_never_in_plain_text(
    gitops_platform: Platform, tmp_path: Path, sealing_dir: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    iid = p.create(p.tenant("leuven", "24062"), "zaken")
    worker.run_until_idle()
    password = derive_secret(SERVER_SECRET, str(iid), "db_password")
    tree = tmp_path / "tree"
    for path in tree.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data
            assert base64.b64encode(password.encode()) not in data
    sealed_file = next((tree / "leuven" / "zaken").glob("*credentials*"))
    sealed = yaml.safe_load(sealed_file.read_text())
    assert sealed["kind"] == "SealedSecret"
    ciphertext = base64.b64decode(sealed["spec"]["encryptedData"]["password"])
    key = load_private_key(sealing_dir / "sealing.key")
    label = strict_label("leuven-zaken", "credentials")
    assert hybrid_decrypt(key, ciphertext, label).decode() == password
