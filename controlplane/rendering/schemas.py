"""Validation of rendered objects against the official Kubernetes schemas.

The schemas are the offline, strict JSON Schemas shipped inside ``kubernetes-validate``
(one folder per Kubernetes minor, e.g. ``v1.33.0-local-strict``): unknown fields are
errors, as the API server's strict field validation would report them. Each schema is
compiled with jsonschema-rs once per (Kubernetes version, apiVersion, kind) and cached;
custom resources the platform renders itself (cert-manager's ``Certificate``) are checked
against their CRD's schema, vendored in ``crds/``;
``$ref`` s resolve against the folder's ``_definitions.json`` in memory, never over the
network.

This module must not know about templates, parameters or the security policy.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs

from controlplane.errors import ErrorItem

_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


@cache
def _schema_folder(kubernetes_version: str) -> Path:
    """The newest shipped schema folder that is not newer than the requested minor."""
    root = Path(str(resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")))
    wanted = _minor(kubernetes_version)
    folders = sorted(
        (_minor(p.name.removeprefix("v")), p)
        for p in root.iterdir()
        if p.name.endswith("-local-strict")
    )
    usable = [p for minor, p in folders if minor <= wanted]
    if not usable:
        oldest = ".".join(map(str, folders[0][0])) if folders else "none"
        raise ValueError(
            f"No Kubernetes schemas for version {kubernetes_version} (oldest shipped: {oldest})."
        )
    return usable[-1]


def _minor(version: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"{version!r} is not a Kubernetes version such as '1.33'.")
    return int(match.group(1)), int(match.group(2))


def supported(kubernetes_version: str) -> bool:
    try:
        _schema_folder(kubernetes_version)
    except ValueError:
        return False
    return True


class KubernetesSchemas:
    """Compiled validators of one Kubernetes minor version, by (apiVersion, kind)."""

    def __init__(self, kubernetes_version: str) -> None:
        self.kubernetes_version = kubernetes_version
        self._folder = _schema_folder(kubernetes_version)
        self._registry: Any = None
        self._validators: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _get(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        hit = self._validators.get(key)
        if hit is not None:
            return hit
        with self._lock:
            if self._registry is None:
                definitions = json.loads((self._folder / "_definitions.json").read_text())
                self._registry = jsonschema_rs.Registry([(_DEFINITIONS_URI, definitions)])
            schema = self._schema(api_version, kind)
            validator = (
                None
                if schema is None
                else jsonschema_rs.validator_for(schema, registry=self._registry, offline=True)
            )
            # An unknown kind is remembered as False so that the lookup is not repeated.
            self._validators[key] = validator if validator is not None else False
        return self._validators[key]

    def _schema(self, api_version: str, kind: str) -> dict[str, Any] | None:
        group, _, version = api_version.rpartition("/")
        vendored = _crd_schema(group, version, kind)
        if vendored is not None:
            return vendored
        # kubernetes-validate's file names: <kind>-<first part of group>-<version>.json
        stem = (
            f"{kind.lower()}-{group.split('.')[0]}-{version}"
            if group
            else f"{kind.lower()}-{version}"
        )
        path = self._folder / f"{stem}.json"
        if not re.fullmatch(r"[a-z0-9-]+", stem) or not path.is_file():
            return None
        schema: dict[str, Any] = json.loads(path.read_text())
        # The file name drops the group's domain: check the real group/version/kind.
        gvks = schema.get("x-kubernetes-group-version-kind", [])
        if not any(
            g.get("group", "") == group and g.get("version") == version and g.get("kind") == kind
            for g in gvks
        ):
            return None
        return schema

    def validate(self, obj: Mapping[str, Any], where: str) -> list[ErrorItem]:
        """Problems of one object; ``where`` is ``Kind/name`` for the locations."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return [ErrorItem(where, "apiVersion and kind must be strings")]
        validator = self._get(api_version, kind)
        if validator is False:
            return [
                ErrorItem(
                    where,
                    f"unknown apiVersion/kind {api_version}/{kind} for Kubernetes "
                    f"{self.kubernetes_version}",
                )
            ]
        if validator.is_valid(obj):
            return []
        return [
            ErrorItem(f"{where}: {json_path(error.instance_path)}", error.message)
            for error in validator.iter_errors(obj)
        ]


def _crd_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """A custom resource the platform renders itself (cert-manager's ``Certificate``): the
    CRD's schema vendored in ``crds/`` (see its README), not part of kubernetes-validate."""
    stem = f"{kind.lower()}-{group}-{version}"
    if not group or not re.fullmatch(r"[a-z0-9.-]+", stem):
        return None
    path = Path(str(resources.files("controlplane.rendering").joinpath("crds"))) / f"{stem}.json"
    if not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def json_path(parts: list[str | int]) -> str:
    """``spec.template.spec.containers[0].ports[0].containerPort``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"
