"""The one server secret of an installation: configured, or generated once and shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.db.engine import make_engine
from controlplane.provisioning.server_secret import ServerSecretUnreadable, resolve_server_secret
from controlplane.settings import Settings


def test_generated_once_private_and_the_same_for_every_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = resolve_server_secret(settings)
    path = tmp_path / "data" / "server-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first) == 64
    # Another process of the same installation (fresh settings, same data directory).
    assert resolve_server_secret(Settings(data_dir=tmp_path / "data")) == first
    assert [p.name for p in path.parent.iterdir()] == ["server-secret"]  # no temporary left


def test_the_configured_secret_wins_and_writes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, server_secret="from-the-environment")  # type: ignore[arg-type]
    assert resolve_server_secret(settings) == b"from-the-environment"
    assert not (tmp_path / "server-secret").exists()


def test_an_empty_secret_file_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "server-secret").write_text("\n")
    with pytest.raises(ServerSecretUnreadable, match="server-secret"):
        resolve_server_secret(Settings(data_dir=tmp_path))


def test_the_worker_checks_fleet_parameters_for_the_configured_kubernetes_version(
    tmp_path: Path,
) -> None:
    """``CONTROLPLANE_KUBERNETES_VERSION`` reaches the worker, not only the API."""
    from controlplane.provisioning.embedding import build_worker
    from controlplane.provisioning.targets.sealing import ensure_keypair
    from tests.factories import SqliteTemplate

    data = tmp_path / "data"
    ensure_keypair(data.resolve() / "sealing", key_size=2048)  # small: the default is 4096
    engine = make_engine(SqliteTemplate(tmp_path).clone(tmp_path))
    settings = Settings(
        data_dir=data,
        server_secret="from-the-environment",  # type: ignore[arg-type]
        kubernetes_version="1.32",
    )
    worker = build_worker(settings, engine=engine)
    try:
        assert set(worker.reconciler._renderers) == {"1.32"}
    finally:
        engine.dispose()
