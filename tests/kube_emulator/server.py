"""The HTTP face of the emulator: routes Kubernetes API paths onto the store.

A ``ThreadingHTTPServer`` on loopback speaks the JSON API that the official ``kubernetes``
client and Helm (client-go) use: discovery, ``/version``, minimal OpenAPI documents, and the
resource paths ``/api/v1/...`` and ``/apis/<group>/<version>/...``. Every answer that is not a
success is a ``Status`` body like the real server's. Faults are injected and writes counted
before routing. Watches are not served. Nothing here decides object semantics (see ``store.py``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.kube_emulator import kinds, protobuf
from tests.cluster.faults import Faults, Writes
from tests.kube_emulator.selectors import SelectorError, field_selector, label_selector
from tests.kube_emulator.store import ApiError, Store

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: libyaml's loader when PyYAML has it (same results, ~10x faster): apply bodies are YAML, and
#: the pure-Python parser made the emulator the bottleneck of benchmarks that share its process.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "emulator",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Route:
    kind: kinds.Kind
    namespace: str | None
    name: str | None
    subresource: str


def route(path: str) -> Route | None:
    """Map a resource path onto (kind, namespace, name, subresource); None if not one."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    served = {k.plural: k for k in kinds.kinds_of(group, version)}
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in served:
        namespace, rest = rest[1], rest[2:]
    kind = served.get(rest[0])
    if kind is None or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if namespace is not None and not kind.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(
        kind, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else ""
    )


def discovery(path: str) -> dict[str, Any] | None:
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }
    if parts == ["api", "v1"]:
        return kinds.resource_list("", "v1")
    if parts == ["apis"]:
        return kinds.api_group_list()
    groups = kinds.groups()
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return kinds.api_group(parts[1], groups[parts[1]])
    if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
        return kinds.resource_list(parts[1], parts[2])
    if parts == ["version"]:
        return VERSION_INFO
    if parts == ["openapi", "v2"]:
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
            "paths": {},
            "definitions": {},
        }
    if parts == ["openapi", "v3"]:
        return kinds.openapi_v3_root()
    if parts[:2] == ["openapi", "v3"]:
        return kinds.openapi_v3_document("/".join(parts[2:]))
    return None


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: Store, faults: Faults, writes: Writes):
        super().__init__(address, Handler)
        self.store = store
        self.faults = faults
        self.writes = writes

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (a killed worker in the soak test) is normal
        # for a server; anything else is still printed.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet unless KUBE_EMULATOR_LOG names a file: tests read counters, not an access log."""
        if log_path := os.environ.get("KUBE_EMULATOR_LOG"):
            accept = self.headers.get("Accept", "") if self.headers else ""
            accept += f" content-type={self.headers.get('Content-Type') if self.headers else ''}"
            with open(log_path, "a") as log:
                log.write(f"{format % args} accept={accept}\n")

    # -- plumbing --------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Answers go out in one write with Nagle off: otherwise delayed ACKs add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        lines = [
            f"{self.protocol_version} {code} {self.responses.get(code, ('',))[0]}",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.log_request(code)
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout while a delay fault slept): nothing to answer.
            self.close_connection = True

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        raw = self._body()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            target = route(url.path)
        except ApiError as exc:
            target = None
            if method in WRITE_METHODS:
                self.server.writes.record(method, url.path, None)
            self._send(exc.code, exc.status())
            return
        if method in WRITE_METHODS:
            self.server.writes.record(method, url.path, target.kind.kind if target else None)
        rule = self.server.faults.pick(method, url.path)
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            if rule.status is not None:
                headers = {}
                if rule.status in (429, 503) or rule.retry_after is not None:
                    headers["Retry-After"] = str(rule.retry_after or 0)
                error = ApiError(rule.status, rule.reason, rule.text())
                self._send(rule.status, error.status(), headers)
                return
        self.server.store.purge_terminated()
        try:
            if target is None:
                document = discovery(url.path) if method == "GET" else None
                if document is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                self._send(200, document)
                return
            code, body = self._resource(method, target, query, raw)
            if code:  # 0: the handler streamed its own answer (a watch)
                self._send(code, body)
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except (ValueError, yaml.YAMLError) as exc:
            error = ApiError(400, "BadRequest", f"the request body could not be decoded: {exc}")
            self._send(400, error.status())

    def _matching(self, r: Route, query: dict[str, str]) -> list[dict[str, Any]]:
        try:
            labels = label_selector(query.get("labelSelector"))
            fields = field_selector(query.get("fieldSelector"))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        return [
            item
            for item in self.server.store.list(r.kind, r.namespace)
            if labels(item["metadata"].get("labels") or {}) and fields(item)
        ]

    def _watch(self, r: Route, query: dict[str, str]) -> None:
        """A polling watch: events for changes after ``resourceVersion``, until the timeout.

        Enough for client-go informers (Helm's ``--wait``): they list, then watch from the
        list's resourceVersion, and re-list when a watch ends.
        """
        since = int(query.get("resourceVersion") or 0)
        seen = {
            o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
            for o in self._matching(r, query)
        }
        initial = query.get("sendInitialEvents") in ("true", "1")
        if not since or initial:
            seen = {}
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 5), 5.0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")

        try:
            while True:
                current = {o["metadata"]["name"]: o for o in self._matching(r, query)}
                for name, obj in current.items():
                    rv = int(obj["metadata"]["resourceVersion"])
                    if name not in seen:
                        emit("ADDED", obj)
                    elif rv > seen[name] and rv > since:
                        emit("MODIFIED", obj)
                    seen[name] = rv
                for name in [n for n in seen if n not in current]:
                    emit(
                        "DELETED",
                        {
                            "kind": r.kind.kind,
                            "apiVersion": r.kind.api_version,
                            "metadata": {"name": name},
                        },
                    )
                    del seen[name]
                if initial:
                    # A streaming list (client-go WatchList) ends its initial events with this.
                    initial = False
                    emit(
                        "BOOKMARK",
                        {
                            "kind": r.kind.kind,
                            "apiVersion": r.kind.api_version,
                            "metadata": {
                                "resourceVersion": self.server.store.resource_version,
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    )
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _decode(self, raw: bytes) -> dict[str, Any]:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except NotImplementedError as exc:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the emulator does not decode {exc}"
                ) from None
        loaded = json.loads(raw or b"{}")
        if not isinstance(loaded, dict):
            raise ApiError(400, "BadRequest", "the request body is not an object")
        return loaded

    def _manager(self, query: dict[str, str]) -> str:
        if "fieldManager" in query:
            return query["fieldManager"]
        agent = self.headers.get("User-Agent") or "unknown"
        return agent.split("/")[0].split(" ")[0] or "unknown"

    def _resource(
        self, method: str, r: Route, query: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        store = self.server.store
        kind = r.kind
        if r.subresource not in ("", "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and r.name is None:
            items = self._matching(r, query)
            if query.get("watch") in ("true", "1"):
                self._watch(r, query)
                return 0, {}
            return 200, {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": store.resource_version},
                "items": items,
            }
        if method == "GET":
            return 200, store.get(kind, r.namespace, r.name or "")
        if method == "POST" and r.name is None:
            body = self._decode(raw)
            namespace = r.namespace
            if kind.kind == "Namespace":
                namespace = None
            return 201, store.create(kind, namespace, body, self._manager(query))
        if r.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} needs an object name")
        if method == "PUT":
            body = self._decode(raw)
            return 200, store.replace(
                kind, r.namespace, r.name, body, self._manager(query), subresource=r.subresource
            )
        if method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type == "application/apply-patch+yaml":
                body = yaml.load(raw or b"{}", Loader=_YAML_LOADER) or {}
                if "fieldManager" not in query:
                    raise ApiError(
                        422,
                        "Invalid",
                        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                        "Required value: is required for apply patch",
                    )
                obj, created = store.apply(
                    kind,
                    r.namespace,
                    r.name,
                    body,
                    query["fieldManager"],
                    force=query.get("force") in ("true", "1"),
                    subresource=r.subresource,
                )
                return (201 if created else 200), obj
            if content_type in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                body = json.loads(raw or b"{}")
                return 200, store.patch(
                    kind, r.namespace, r.name, body, self._manager(query), subresource=r.subresource
                )
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the emulator does not accept {content_type!r} patches",
            )
        if method == "DELETE":
            obj = store.delete(kind, r.namespace, r.name)
            if kind.kind == "Namespace":
                return 200, obj
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": r.name,
                    "group": kind.group,
                    "kind": kind.plural,
                    "uid": obj["metadata"]["uid"],
                },
            }
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")


class ServerThread:
    """Runs an :class:`EmulatorServer` in a daemon thread; ``stop()`` is idempotent."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
