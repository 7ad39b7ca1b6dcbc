"""The GitOps drift check skips reading a folder whose files kept their identity.

A folder read in full is not read again while every file keeps its inode, size, mtime and
ctime, except when a file changed too close to that read (racy timestamps) or an hour has
passed. Edits that keep size and mtime still change the ctime and are found.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from controlplane.provisioning.targets import Stack, gitops
from controlplane.provisioning.targets.gitops import KUSTOMIZATION, GitOpsTarget
from controlplane.provisioning.targets.sealing import Sealer, ensure_keypair
from controlplane.rendering.naming import object_id

#: Long enough for the next change to get another ctime tick on any local file system.
TICK = 0.05


def _stack() -> Stack:
    objects = []
    for name in ("settings", "extra"):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "gent-forms"},
                "data": {"colour": "blue"},
            }
        )
    return Stack(
        tenant="gent",
        instance="forms",
        instance_id="id-gent-forms",
        namespace="gent-forms",
        objects=tuple(objects),
        digests={object_id(o): "sha256:" + str(i) * 64 for i, o in enumerate(objects)},
    )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the GitOps target reads, in order."""
    seen: list[str] = []
    real = gitops._read

    def counting(path: str, *args: object) -> bytes:
        seen.append(path)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(gitops, "_read", counting)
    return seen


def _written(tmp_path: Path) -> tuple[GitOpsTarget, Stack, Path]:
    target = GitOpsTarget(tmp_path)
    stack = _stack()
    target.apply(stack)
    target.flush("batch")
    return target, stack, tmp_path / "gent" / "forms"


@pytest.fixture
def checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GitOpsTarget, Stack, Path]:
    """A folder written, older than a short racy window, then read in full by a drift check."""
    monkeypatch.setattr(gitops, "RACY_NS", int(TICK * 1e9))
    target, stack, folder = _written(tmp_path)
    time.sleep(2 * TICK)
    assert target.drifted(stack) == set()
    return target, stack, folder


def test_an_unchanged_folder_is_checked_by_identity_not_read(
    checked: tuple[GitOpsTarget, Stack, Path], reads: list[str]
) -> None:
    target, stack, _folder = checked
    digest = target.folder_digest("gent", "forms")
    reads.clear()
    assert target.drifted(stack) == set()
    assert reads == []
    # The readiness step still gets the folder's digest, as if it had been read.
    assert digest[: len("sha256:") + 12] in target.readiness(stack).messages[0]


def test_an_edit_that_keeps_size_and_mtime_is_still_found(
    checked: tuple[GitOpsTarget, Stack, Path],
) -> None:
    target, stack, folder = checked
    time.sleep(2 * TICK)
    path = next(p for p in sorted(folder.iterdir()) if "configmap-settings" in p.name)
    before = path.stat()
    data = path.read_bytes()
    path.write_bytes(data.replace(b"blue", b"pink"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert target.drifted(stack) == {object_id(stack.objects[0])}


def test_files_changed_within_the_racy_window_are_read_again(
    tmp_path: Path, reads: list[str]
) -> None:
    # The default window (2 s): a folder checked right after it was written cannot be
    # trusted by identity (a second write in the same timestamp tick would not show).
    target, stack, _folder = _written(tmp_path)
    assert target.drifted(stack) == set()
    assert len(reads) == 3  # two objects and the kustomization
    reads.clear()
    assert target.drifted(stack) == set()
    assert len(reads) == 3


def test_added_removed_and_rewritten_files_are_read_again(
    checked: tuple[GitOpsTarget, Stack, Path], reads: list[str]
) -> None:
    target, stack, folder = checked
    # A foreign file: the folder is read again and the folder digest changes.
    (folder / "notes.txt").write_text("a foreign file\n")
    reads.clear()
    assert target.drifted(stack) == set()
    assert reads
    (folder / "notes.txt").unlink()
    # A removed object file is drift.
    removed = next(p for p in sorted(folder.iterdir()) if "configmap-extra" in p.name)
    removed.unlink()
    assert target.drifted(stack) == {object_id(stack.objects[1])}
    # The repair writes it again; the next check reads the new file, finds no drift.
    target.apply(stack)
    time.sleep(2 * TICK)
    assert target.drifted(stack) == set()
    # The kustomization replaced by other bytes is drift too.
    (folder / KUSTOMIZATION).write_bytes(b"resources: []\n")
    assert target.drifted(stack) == {KUSTOMIZATION}


def test_a_folder_is_read_in_full_again_after_an_hour(
    checked: tuple[GitOpsTarget, Stack, Path], reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, stack, _folder = checked
    monkeypatch.setattr(gitops, "FULL_READ_SECONDS", 0.0)
    reads.clear()
    assert target.drifted(stack) == set()
    assert len(reads) == 3


def test_a_new_sealing_certificate_is_drift_even_for_a_folder_known_unchanged(
    tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch, sealing_dir: Path
) -> None:
    # What the check remembers says which files are sealed, not for which certificate: a
    # new certificate expects other headers, so the folder is read and its Secret sealed again.
    monkeypatch.setattr(gitops, "RACY_NS", int(TICK * 1e9))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "gent-forms"},
        "stringData": {"password": "s3cret"},
    }
    base = _stack()
    stack = Stack(
        tenant=base.tenant,
        instance=base.instance,
        instance_id=base.instance_id,
        namespace=base.namespace,
        objects=(*base.objects, secret),
        digests={**base.digests, object_id(secret): "sha256:" + "7" * 64},
    )
    target = GitOpsTarget(tmp_path, sealer=Sealer.from_pem_file(sealing_dir / "sealing.crt"))
    target.apply(stack)
    target.flush("batch")
    time.sleep(2 * TICK)
    assert target.drifted(stack) == set()  # read in full
    reads.clear()
    assert target.drifted(stack) == set()  # known unchanged
    assert reads == []
    other = ensure_keypair(tmp_path / "other-sealing", key_size=2048)
    target.sealer = Sealer.from_pem_file(other)
    assert target.drifted(stack) == {object_id(secret)}
