"""A Kubernetes API server emulator for tests, spoken to over loopback HTTP.

No kube-apiserver can run on the project's machines, so the Kubernetes port and Helm are tested
against this emulator with the real official client. It serves the subset the platform uses
(see docs/kubernetes.md for what it implements and what it does not). Production code must never
import it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml

from tests.cluster.faults import FaultRule, Faults, Writes
from tests.kube_emulator.kinds import KINDS, Kind, find_kind
from tests.kube_emulator.server import EmulatorServer, ServerThread
from tests.kube_emulator.store import ApiError, Store

__all__ = ["KINDS", "ApiError", "FaultRule", "Faults", "Kind", "KubeEmulator", "Writes"]


class KubeEmulator:
    """One emulated cluster on ``127.0.0.1:<free port>``; use as a context manager."""

    def __init__(self, *, seed: int = 0, namespace_delete_delay: float = 0.0) -> None:
        self.store = Store(namespace_delete_delay=namespace_delete_delay)
        self.faults = Faults(seed=seed)
        self.writes = Writes()
        self._server = EmulatorServer(("127.0.0.1", 0), self.store, self.faults, self.writes)
        self._thread = ServerThread(self._server)
        self._clients: list[kubernetes.client.ApiClient] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubeEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        for client in self._clients:
            client.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        self._thread.stop()

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a fresh cluster: default namespaces only, no faults, counters at zero."""
        self.store.reset()
        self.faults.clear()
        self.writes.reset()

    # -- clients ---------------------------------------------------------------------------

    def configuration(self) -> kubernetes.client.Configuration:
        config = kubernetes.client.Configuration()
        config.host = self.url
        # The port does its own retrying; urllib3's silent retries would hide injected faults.
        config.retries = 0
        return config

    def api_client(self) -> kubernetes.client.ApiClient:
        client = kubernetes.client.ApiClient(self.configuration())
        self._clients.append(client)
        return client

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path else Path(tempfile.mkstemp(suffix=".kubeconfig")[1])
        target.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return target

    # -- test controls ---------------------------------------------------------------------

    def set_ready(
        self,
        state: bool | str = True,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        self.store.set_ready(state, kind=kind, namespace=namespace, name=name)

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a kind (Kind name, plural or short name), in one or all namespaces."""
        self.store.purge_terminated()
        return self.store.list(find_kind(kind), namespace)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.store.purge_terminated()
        try:
            return self.store.get(find_kind(kind), namespace, name)
        except ApiError:
            return None

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (no HTTP, no write counted), status included."""
        return self.store.put_raw(obj)

    def finish_terminating(self) -> None:
        """Let every terminating namespace (and its objects) disappear now."""
        self.store.finish_terminating()

    @property
    def namespace_delete_delay(self) -> float:
        return self.store.namespace_delete_delay

    @namespace_delete_delay.setter
    def namespace_delete_delay(self, seconds: float) -> None:
        self.store.namespace_delete_delay = seconds
