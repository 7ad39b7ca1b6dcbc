"""The local cluster's own behaviour: reuse, and failures that say what failed and where."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cluster.fixtures import Cluster
from tests.cluster.local import COMPONENTS, ClusterError, LocalCluster


def test_up_reuses_a_running_cluster(cluster: Cluster) -> None:
    if cluster.local is None:
        pytest.skip("an external cluster (CITY_TEST_KUBECONFIG) is not started by LocalCluster")
    before = LocalCluster(cluster.local.paths.root)._state()["pids"]

    LocalCluster(cluster.local.paths.root).up()

    after = LocalCluster(cluster.local.paths.root)._state()["pids"]
    assert after["kube-apiserver"] == before["kube-apiserver"]
    assert after["etcd"] == before["etcd"]


def test_missing_binaries_are_named_with_the_command_that_builds_them(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as caught:
        LocalCluster(tmp_path / "cluster").up()

    message = str(caught.value)
    assert "missing binaries" in message
    for name in COMPONENTS:
        assert name in message
    assert "make cluster" in message


@pytest.mark.parametrize("part", ["etcd", "kwok"])
def test_a_part_that_exits_at_start_is_named_with_its_log(
    cluster: Cluster, tmp_path: Path, part: str
) -> None:
    if cluster.local is None:
        pytest.skip("needs the locally built binaries")
    root = tmp_path / "cluster"
    (root / "bin").mkdir(parents=True)
    for binary in cluster.local.paths.bin.iterdir():
        (root / "bin" / binary.name).symlink_to(binary.resolve())
    broken = root / "bin" / part
    broken.unlink()
    broken.write_text(
        f"#!/bin/sh\necho '{part}: cannot listen: address already in use' >&2\nexit 1\n"
    )
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    local = LocalCluster(root)

    with pytest.raises(ClusterError) as caught:
        local.up()

    message = str(caught.value)
    assert message.startswith(f"{part} exited at start")
    assert str(local.paths.log(part)) in message
    assert "address already in use" in message  # the end of the log is quoted
    assert _processes_under(root) == [], "a failed start must not leave parts running"


def _processes_under(root: Path) -> list[str]:
    """Command lines of live processes that run a binary of (or name a path in) ``root``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if str(root) in cmdline and state != "Z":
            found.append(cmdline)
    return found
