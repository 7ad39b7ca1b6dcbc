"""The files that hold the platform's secrets are private, and none is in a git-tracked tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from controlplane.provisioning.targets.sealing import ensure_keypair

REPO = Path(__file__).resolve().parents[2]


def test_the_sealing_key_is_private_and_its_folder_too(tmp_path: Path) -> None:
    folder = tmp_path / "sealing"
    ensure_keypair(folder, key_size=2048)
    assert (folder / "sealing.key").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o077 == 0


def test_a_regenerated_sealing_key_does_not_keep_a_loose_mode(tmp_path: Path) -> None:
    # The certificate was lost and a key file with a loose mode (a restore, a copy) is
    # still there: the new key must not be written into that readable file as it is.
    folder = tmp_path / "sealing"
    folder.mkdir(mode=0o700)
    stale = folder / "sealing.key"
    stale.write_text("old")
    stale.chmod(0o644)
    ensure_keypair(folder, key_size=2048)
    assert stale.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in stale.read_text()


def test_the_data_directory_is_ignored_by_git() -> None:
    for path in (".data/server-secret", ".data/sealing/sealing.key", ".data/gitops/x.yaml"):
        result = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=REPO, check=False, capture_output=True
        )
        assert result.returncode == 0, f"{path} is not ignored by .gitignore"
