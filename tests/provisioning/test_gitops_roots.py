"""The root and tenant kustomizations of the GitOps tree: `kubectl kustomize <root>` and
`kubectl kustomize <root>/<tenant>` build every instance, and they follow creates and
deletes (a tenant without instances leaves no folder and no entry)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.provisioning.models import Phase
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.gitops import KUSTOMIZATION, GitOpsTarget
from controlplane.rendering.naming import object_id
from tests.provisioning.conftest import Platform, make_worker

#: The pinned kubectl that `make cluster` builds, else one on PATH.
_PINNED = Path(".cluster/bin/kubectl")
KUBECTL = str(_PINNED) if _PINNED.is_file() else shutil.which("kubectl")


def _resources(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "Kustomization"
    return list(doc["resources"])


def _namespaces(folder: Path) -> list[str]:
    """The namespaces `kubectl kustomize` builds from a folder (one per instance)."""
    assert KUBECTL is not None
    built = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert all(d["kind"] != "Secret" for d in docs)
    return sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")


def test_root_and_tenant_kustomizations_follow_creates_and_deletes(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    tree = tmp_path / "tree"
    gent, mol = p.tenant("gent", "44021"), p.tenant("mol", "13017")
    forms = p.create(gent, "forms")
    p.create(gent, "portal")
    only = p.create(mol, "site")
    worker.run_until_idle()

    assert _resources(tree / KUSTOMIZATION) == ["gent", "mol"]
    assert _resources(tree / "gent" / KUSTOMIZATION) == ["forms", "portal"]
    assert _resources(tree / "mol" / KUSTOMIZATION) == ["site"]

    # A no-op resync rewrites none of the listings.
    listings = [tree / KUSTOMIZATION, tree / "gent" / KUSTOMIZATION]
    before = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in listings]
    p.make_all_due()
    worker.run_until_idle()
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in listings] == before

    p.delete(forms)
    p.delete(only)
    worker.run_until_idle()
    assert p.get(only).phase == Phase.DELETED
    assert _resources(tree / KUSTOMIZATION) == ["gent"]
    assert _resources(tree / "gent" / KUSTOMIZATION) == ["portal"]
    assert not (tree / "mol").exists()

    # A listing removed by hand is written again at the next resync (drift).
    (tree / KUSTOMIZATION).unlink()
    p.make_all_due()
    worker.run_until_idle()
    assert _resources(tree / KUSTOMIZATION) == ["gent"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is needed for `kubectl kustomize`")
def test_kubectl_kustomize_builds_the_root_and_each_tenant(
    gitops_platform: Platform, tmp_path: Path
) -> None:
    p = gitops_platform
    worker = make_worker(p)
    tree = tmp_path / "tree"
    gent, geel = p.tenant("gent", "44021"), p.tenant("geel", "13008")
    p.create(gent, "one")
    p.create(gent, "two", version="2.0.0")
    p.create(geel, "one")
    worker.run_until_idle()

    per_instance = {
        folder.parent.name + "/" + folder.name: _namespaces(folder)
        for folder in (k.parent for k in tree.glob("*/*/" + KUSTOMIZATION))
    }
    assert len(per_instance) == 3
    every = sorted(ns for names in per_instance.values() for ns in names)
    assert _namespaces(tree) == every
    assert _namespaces(tree / "gent") == sorted(per_instance["gent/one"] + per_instance["gent/two"])


def _stack(tenant: str, instance: str) -> Stack:
    namespace = f"{tenant}-{instance}"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    config["metadata"]["namespace"] = namespace
    return Stack(
        tenant=tenant,
        instance=instance,
        instance_id=f"id-{namespace}",
        namespace=namespace,
        objects=(config,),
        digests={object_id(config): "sha256:" + "0" * 64},
    )


def test_listings_are_written_once_per_batch_at_flush(tmp_path: Path) -> None:
    """An apply leaves the root and tenant listings to ``flush`` (once per batch), says so in
    its report, and the drift check sees the missing entry until the flush."""
    target = GitOpsTarget(tmp_path)
    stack = _stack("gent", "forms")

    report = target.apply(stack)

    assert not (tmp_path / KUSTOMIZATION).exists()
    assert target.drifted(stack) == {KUSTOMIZATION}
    assert target.apply(stack, only={KUSTOMIZATION}).written == [KUSTOMIZATION]
    assert report.written == [object_id(stack.objects[0])]
    target.flush("batch")
    assert _resources(tmp_path / KUSTOMIZATION) == ["gent"]
    assert _resources(tmp_path / "gent" / KUSTOMIZATION) == ["forms"]
    assert target.drifted(stack) == set()


def test_readiness_digest_is_the_folders_digest_after_write_and_drift_check(
    tmp_path: Path,
) -> None:
    """The digest kept from the bytes just written or read is the one read from disk."""
    target = GitOpsTarget(tmp_path)
    stack = _stack("gent", "forms")
    target.apply(stack)
    folder_digest = target.folder_digest("gent", "forms")
    short = folder_digest[: len("sha256:") + 12]
    assert short in target.readiness(stack).messages[0]  # kept from the create
    target.drifted(stack)
    assert short in target.readiness(stack).messages[0]  # kept from the drift check
    (tmp_path / "gent" / "forms" / "notes.txt").write_text("a foreign file\n")
    target.drifted(stack)
    changed = target.folder_digest("gent", "forms")
    assert changed != folder_digest
    assert changed[: len("sha256:") + 12] in target.readiness(stack).messages[0]
