"""A fault-injecting proxy in front of the real kube-apiserver.

Clients talk plain HTTP to ``127.0.0.1:<port>``; the proxy forwards every request over TLS to
the apiserver as cluster-admin (client certificate) and relays the answer, streamed, so
watches work. Before forwarding it consults :class:`~tests.cluster.faults.Faults` (answer a
chosen share of requests with 429/500/503 and ``Retry-After``, or delay them past the client's
timeout) and records writes in :class:`~tests.cluster.faults.Writes` (so a test can assert
"zero writes" against a real cluster). Everything else is the real apiserver's answer.

    with FaultProxy(kubeconfig) as proxy:
        proxy.faults.add(503, method="PATCH", probability=0.2)
        client = proxy.api_client()
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes.client
import yaml

from tests.cluster.faults import WRITE_METHODS, Faults, Writes

#: Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1); length and encoding are redone.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}
_RESOURCE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/[^/]+)?/(?P<plural>[^/]+)"
)


class Upstream:
    """Where and how to reach the apiserver (from a kubeconfig with client certificates)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        url = urlsplit(cluster["server"])
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])
        self._local = threading.local()
        self._kinds: dict[str, str] = {}
        self._kinds_lock = threading.Lock()

    def connection(self, *, fresh: bool = False) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=120)
            self._local.conn = conn
        return conn

    def kind_of(self, path: str) -> str | None:
        """The kind a resource path names (from the apiserver's discovery, cached)."""
        match = _RESOURCE.match(path)
        if not match:
            return None
        gv = match["core"] or f"{match['group']}/{match['version']}"
        key = f"{gv}/{match['plural']}"
        with self._kinds_lock:
            if key not in self._kinds:
                base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
                conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.ssl, timeout=10
                )
                try:
                    conn.request("GET", base, headers={"Accept": "application/json"})
                    doc = json.loads(conn.getresponse().read() or b"{}")
                finally:
                    conn.close()
                for res in doc.get("resources", []):
                    self._kinds[f"{gv}/{res['name'].split('/')[0]}"] = res["kind"]
            return self._kinds.get(key)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, upstream: Upstream, faults: Faults, writes: Writes, requests: Writes | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.faults = faults
        self.writes = writes
        #: Every request, reads (and watches) included.
        self.requests = requests if requests is not None else Writes()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a closed watch, a timed-out request) is normal.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer goes out as two writes (head, then body): with Nagle's algorithm on, the body
    # waits for the client's delayed ACK of the head, 40 ms per request on Linux. The real
    # apiserver sets TCP_NODELAY (as Go does on every TCP connection); so must its stand-in.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def do_PUT(self) -> None:
        self._forward("PUT")

    def do_PATCH(self) -> None:
        self._forward("PATCH")

    def do_DELETE(self) -> None:
        self._forward("DELETE")

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = urlsplit(self.path).path
        self.server.requests.record(method, path, None)
        if method in WRITE_METHODS:
            self.server.writes.record(method, path, self.server.upstream.kind_of(path))
        rule = self.server.faults.pick(method, path)
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            if rule.status is not None:
                self._fault(rule.status, rule.reason, rule.text(), rule.retry_after)
                return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            conn = self.server.upstream.connection(fresh=attempt == 2)
            try:
                conn.request(method, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                break
            except (http.client.HTTPException, OSError):
                if attempt == 2:
                    self._fault(503, "ServiceUnavailable", "proxy: the apiserver is unreachable", 1)
                    return
        self._relay(resp)

    def _relay(self, resp: http.client.HTTPResponse) -> None:
        self.send_response(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP:
                self.send_header(key, value)
        streamed = resp.getheader("Transfer-Encoding", "").lower() == "chunked"
        if not streamed:
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while chunk := resp.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            # The client went away (a watch it closed): drop the upstream stream with it.
            self.server.upstream.connection(fresh=True)
            self.close_connection = True

    def _fault(self, status: int, reason: str, message: str, retry_after: int | None) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": status,
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status in (429, 503) or retry_after is not None:
            self.send_header("Retry-After", str(retry_after or 0))
        self.end_headers()
        self.wfile.write(body)


class FaultProxy:
    """The proxy on a free loopback port, serving in a background thread."""

    def __init__(self, kubeconfig: Path, *, seed: int = 0) -> None:
        self.faults = Faults(seed=seed)
        self.writes = Writes()
        #: All requests received (GET, watches included), counted like ``writes``.
        self.requests = Writes()
        self._server = _Server(Upstream(kubeconfig), self.faults, self.writes, self.requests)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def configuration(self) -> kubernetes.client.Configuration:
        config = kubernetes.client.Configuration()
        config.host = self.url
        return config

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.configuration())

    def kubeconfig(self, *, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [
                {
                    "name": "proxy",
                    "context": {"cluster": "proxy", "user": "proxy", "namespace": namespace},
                }
            ],
            "current-context": "proxy",
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig()))
        target.chmod(0o600)
        return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
