"""A real control plane on loopback for the cityctl tests, and a way to run cityctl.

The API is the real FastAPI app (``create_app``) served by uvicorn in a thread on
127.0.0.1, on a temporary SQLite database, with the embedded GitOps target in tmp_path
and a real reconcile worker. cityctl runs in-process through typer's CliRunner with
its config file in tmp_path: nothing in these tests mocks HTTP.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from cli.main import app as cityctl_app
from controlplane import migrations
from controlplane.auth import tokens
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.db.sessions import open_session
from controlplane.settings import Settings
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.cluster.fixtures import cluster  # noqa: F401 - for the tests that need the real cluster

MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV
SERVER_SECRET = "cli-tests-server-secret-0123456789"


def _create_app(settings: Settings, engine: Engine) -> Any:
    try:
        from controlplane.api import create_app  # type: ignore[attr-defined]
    except ImportError:
        from controlplane.api.app import create_app
    return create_app(settings, engine=engine)


def _prepare_sealing_key(settings: Settings) -> None:
    """The embedded default makes a 4096-bit sealing key on first start; a smaller one made
    the same way up front keeps the tests fast (the embedded worker reuses it)."""
    from controlplane.provisioning.targets.sealing import ensure_keypair

    ensure_keypair(settings.data_dir.resolve() / "sealing", key_size=2048)


@dataclass
class Platform:
    """One running control plane: its URL, data directory and a way to mint tokens."""

    url: str
    data_dir: Path
    engine: Engine
    worker: Any | None
    home: Path
    runner: CliRunner = field(default_factory=CliRunner)
    tokens: dict[str, str] = field(default_factory=dict)

    def issue_token(self, role: Role, name: str) -> str:
        """A token minted the way `controlplane bootstrap` does (server side, domain call)."""
        for session in open_session(self.engine):
            issued = tokens.create_token(
                session, name=name, role=role, created_by="controlplane bootstrap"
            )
            session.commit()
        return issued.token

    def env(self, token: str | None = None, **extra: str | None) -> dict[str, str | None]:
        env: dict[str, str | None] = {
            "CITYCTL_CONFIG": str(self.home / "config.json"),
            "CITYCTL_SERVER": self.url,
            "CITYCTL_TOKEN": token,
            "CITYCTL_TENANT": None,
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        env.update(extra)
        return env

    def run(
        self, *args: str, token: str | None = None, input: str | None = None, **extra: str | None
    ) -> Result:
        return self.runner.invoke(
            cityctl_app, list(args), env=self.env(token, **extra), input=input
        )

    def ok(self, *args: str, token: str | None = None) -> Result:
        result = self.run(*args, token=token)
        assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self.ok(*args, "-o", "json", token=token).stdout)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve_platform(tmp: Path, *, with_worker: bool = True) -> Iterator[Platform]:
    data_dir = tmp / "data"
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{tmp / 'controlplane.db'}",
        server_secret=SERVER_SECRET,
        embedded_worker=with_worker,
        # Tests should not sit out the production poll tick (re-checks, retries).
        worker_poll_seconds=0.1,
    )
    engine = make_engine(settings.resolved_database_url())
    migrations.upgrade(engine)
    _prepare_sealing_key(settings)
    app = _create_app(settings, engine)
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.02)
    # The app's lifespan started the embedded worker (as in `controlplane serve`) after it
    # created the default GitOps target, which the worker gave a sealing keypair.
    worker = app.state.worker
    assert (worker is not None) == with_worker
    home = tmp / "home"
    home.mkdir()
    try:
        yield Platform(
            url=f"http://127.0.0.1:{port}",
            data_dir=data_dir,
            engine=engine,
            worker=worker,
            home=home,
        )
    finally:
        server.should_exit = True  # the lifespan's shutdown stops the worker
        thread.join(10)
        sock.close()
        engine.dispose()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A control plane with a worker, shared by the tests of one module."""
    yield from serve_platform(tmp_path_factory.mktemp("platform"))


def municipalities_csv(directory: Path, names: tuple[str, ...]) -> Path:
    """A few lines of the Statbel file (Source: Statbel, CC BY 4.0), copied into ``directory``."""
    lines = MUNICIPALITIES.read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines[1:] if line.split(",")[1] in names]
    assert len(chosen) == len(names), names
    path = directory / "municipalities.csv"
    path.write_text("\n".join([lines[0], *chosen]) + "\n", encoding="utf-8")
    return path
