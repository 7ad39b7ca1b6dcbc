"""OpenAPI v3 documents for the emulator, so that Helm accepts hook objects.

Helm builds hook manifests (our migration Job) with validation switched on, whatever the
install options say. client-go then asks ``/openapi/v3`` whether the server validates
fields itself (a ``fieldValidation`` query parameter on the kind's PATCH operation); if it
does, nothing is validated on the client. Without that answer it falls back to the
protobuf ``/openapi/v2`` document, which the emulator does not serve.

Until tests/kube_emulator answers ``/openapi/v3`` itself, :func:`patched_discovery` adds the
minimal documents: the root lists each group version and each group-version document
holds one PATCH operation per kind with that parameter. It does nothing once the
emulator's own root lists any paths. This module must not know about the chart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _documents(kinds: Any) -> dict[str, dict[str, Any]]:
    by_gv: dict[str, list[Any]] = {}
    for kind in kinds:
        by_gv.setdefault(_gv_path(kind.group, kind.version), []).append(kind)
    documents: dict[str, dict[str, Any]] = {}
    for gv, members in by_gv.items():
        paths: dict[str, Any] = {}
        for kind in members:
            scope = "namespaces/{namespace}/" if kind.namespaced else ""
            paths[f"/{gv}/{scope}{kind.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": kind.group,
                        "version": kind.version,
                        "kind": kind.kind,
                    },
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {},
                }
            }
        documents[gv] = {"openapi": "3.0.0", "info": {"title": "Kubernetes"}, "paths": paths}
    return documents


@contextmanager
def patched_discovery(server_module: Any, kinds: Any) -> Iterator[bool]:
    """Serve OpenAPI v3 from ``server_module.discovery`` while inside; yields whether it had to."""
    original: Callable[[str], dict[str, Any] | None] = server_module.discovery
    root = original("/openapi/v3") or {}
    if root.get("paths"):
        yield False
        return
    documents = _documents(kinds)

    def discovery(path: str) -> dict[str, Any] | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["openapi", "v3"]:
            rest = "/".join(parts[2:])
            if not rest:
                return {
                    "paths": {
                        gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=emulator"}
                        for gv in documents
                    }
                }
            return documents.get(rest)
        return original(path)

    server_module.discovery = discovery
    try:
        yield True
    finally:
        server_module.discovery = original
