"""The GitOps tree as other tools see it: `kubectl kustomize` builds every instance folder,
git commits per batch, and a target without a sealing certificate refuses Secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session

from controlplane.provisioning.models import Phase, Target
from tests.provisioning.conftest import Platform, make_worker

KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed, so `kubectl kustomize` cannot check the GitOps folders",
)
def test_kubectl_kustomize_builds_every_instance_folder(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    for i, slug in enumerate(["gent", "mol", "geel"]):
        tenant = p.tenant(slug, f"{40000 + i}")
        p.create(tenant, "one")
        p.create(tenant, "two", version="2.0.0")
    worker.run_until_idle()
    # Instance folders only: <tree>/<tenant>/<instance>/ (the root and tenant folders list them).
    folders = [k.parent for k in (tmp_path / "tree").glob("*/*/kustomization.yaml")]
    assert len(folders) == 6
    for folder in folders:
        built = subprocess.run(
            [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=False
        )
        assert built.returncode == 0, built.stderr
        kinds = [d["kind"] for d in yaml.safe_load_all(built.stdout) if d]
        assert "Namespace" in kinds
        assert "SealedSecret" in kinds
        assert "Secret" not in kinds


def test_git_commit_per_batch(gitops_platform: Platform, tmp_path: Path) -> None:
    p = gitops_platform
    with Session(p.engine) as session:
        row = session.get(Target, p_target_id(p))
        assert row is not None
        row.config = {**row.config, "git_commit": True}
        session.add(row)
        session.commit()
    worker = make_worker(p)
    iid = p.create(p.tenant("hasselt", "71022"), "web")
    worker.run_until_idle()
    tree = tmp_path / "tree"
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=tree, capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    p.make_all_due()
    worker.run_until_idle()  # no-op: no empty commit
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=tree, capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=tree, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    assert p.get(iid).phase == Phase.COMMITTED


def p_target_id(p: Platform) -> object:
    from sqlmodel import select

    with Session(p.engine) as session:
        return session.exec(select(Target.id).where(Target.name == p.target)).one()


def test_target_without_sealing_cert_fails_with_a_clear_message(gitops_platform: Platform) -> None:
    p = gitops_platform
    with Session(p.engine) as session:
        row = session.get(Target, p_target_id(p))
        assert row is not None
        row.config = {"path": row.config["path"]}
        session.add(row)
        session.commit()
    worker = make_worker(p)
    iid = p.create(p.tenant("lier", "12021"), "web")
    worker.run_once()
    instance = p.get(iid)
    assert instance.phase == Phase.FAILED
    assert instance.message is not None
    assert "sealing_cert" in instance.message
