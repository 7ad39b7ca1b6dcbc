"""`controlplane serve` on embedded defaults, as `make run` starts it: the smoke test.

A real subprocess on a free loopback port with an empty data directory and no
``CONTROLPLANE_*`` settings but those two: it must migrate its SQLite file, create the
default GitOps target, run the embedded worker (which seals that target), and turn an
instance created over HTTP into Ready files in ``<data_dir>/gitops`` — then stop cleanly
on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.provisioning.targets.sealing import ensure_keypair

START_TIMEOUT = 60.0
READY_TIMEOUT = 30.0


@dataclass
class Served:
    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _controlplane(*args: str) -> list[str]:
    # The console script `make run` calls, from the same virtual environment as the tests.
    return [str(Path(sys.executable).parent / "controlplane"), *args]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    # The embedded default makes a 4096-bit sealing key on first start; making a smaller one
    # the same way up front keeps the test fast (serve reuses it).
    ensure_keypair(data_dir / "sealing", key_size=2048)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env.update({"CONTROLPLANE_DATA_DIR": str(data_dir), "CONTROLPLANE_PORT": str(port)})
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _controlplane("serve"), env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"serve exited early:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve never got ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield Served(url, data_dir, env, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _bootstrap(served: Served) -> str:
    result = subprocess.run(
        _controlplane("bootstrap"), env=served.env, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def test_serve_on_embedded_defaults_provisions_an_instance(served: Served) -> None:
    token = _bootstrap(served)
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:

        def ok(method: str, path: str, expect: int, **kw: Any) -> Any:
            response = http.request(method, path, **kw)
            assert response.status_code == expect, (path, response.text)
            return response.json()

        ok("POST", "/api/v1/catalog/publish", 201, json={"service": "keycloak"})
        ok("POST", "/api/v1/tenants", 201, json={"name": "Gent", "nis_code": "44021"})
        created = ok(
            "POST",
            "/api/v1/tenants/gent/instances",
            202,
            json={"name": "login", "service": "keycloak", "plan": "small"},
        )
        assert created["target"] == "local"

        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            status = ok("GET", "/api/v1/tenants/gent/instances/login", 200)["status"]
            if status["observedGeneration"] == 1 and status["phase"] != "Pending":
                break
            assert time.monotonic() < deadline, (status, served.log.read_text())
            time.sleep(0.1)
        # Failed with "no sealing certificate" here meant the worker never sealed the
        # default target on a fresh data directory.
        assert status["phase"] == "Committed", status

    folder = served.data_dir / "gitops" / "gent" / "login"
    assert (folder / "kustomization.yaml").is_file()
    secrets = list(folder.glob("*-secret-*.yaml"))
    assert secrets
    assert all("\nkind: SealedSecret\n" in p.read_text() for p in secrets)
    secret_file = served.data_dir / "server-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600

    served.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully (the lifespan stops the worker), then re-raises the
    # signal it caught, so the exit status is "terminated by SIGTERM".
    assert served.process.wait(15) in (0, -signal.SIGTERM), served.log.read_text()
    assert "Application shutdown complete" in served.log.read_text()
