"""Turning a stored ``Target`` row into a live :class:`StackTarget`, once per process.

Targets hold clients (connection pools, kubeconfig state) and locks (git), so workers share
one object per target row; a changed config builds a new one.

This module must not know about the queue or the reconciler.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from controlplane.errors import ErrorItem, InvalidInput
from controlplane.provisioning.models import Target, TargetKind
from controlplane.provisioning.targets import StackTarget
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.provisioning.targets.sealing import Sealer

TargetFactory = Callable[[Target], StackTarget]


def build_target(row: Target) -> StackTarget:
    config: Mapping[str, Any] = row.config or {}
    if row.kind == TargetKind.GITOPS:
        path = config.get("path")
        if not path:
            raise InvalidInput(
                f"GitOps target {row.name!r} has no `path`.",
                errors=[ErrorItem(f"targets.{row.name}.config.path", "required")],
                hint="Set `path` to the directory (or git work tree) Argo CD or Flux watches.",
            )
        cert = config.get("sealing_cert")
        sealer = Sealer.from_pem_file(Path(cert).expanduser()) if cert else None
        return GitOpsTarget(
            Path(path).expanduser(),
            name=row.name,
            sealer=sealer,
            git_commit=bool(config.get("git_commit", False)),
        )
    if row.kind == TargetKind.KUBERNETES:
        from controlplane.provisioning.targets.kubernetes import KubernetesTarget

        return KubernetesTarget.from_config(row.name, config)
    raise InvalidInput(
        f"Target {row.name!r} has an unknown kind {row.kind!r}.",
        errors=[ErrorItem(f"targets.{row.name}.kind", "must be kubernetes or gitops")],
    )


class TargetRegistry:
    """One live target per (name, config); ``overrides`` pin objects by name (tests, embedding)."""

    def __init__(
        self,
        *,
        factory: TargetFactory = build_target,
        overrides: Mapping[str, StackTarget] | None = None,
    ) -> None:
        self._factory = factory
        self._overrides = dict(overrides or {})
        self._built: dict[str, tuple[str, StackTarget]] = {}
        self._lock = threading.Lock()

    def get(self, row: Target) -> StackTarget:
        if row.name in self._overrides:
            return self._overrides[row.name]
        key = json.dumps([row.kind, row.config], sort_keys=True, default=str)
        with self._lock:
            cached = self._built.get(row.name)
            if cached is not None and cached[0] == key:
                return cached[1]
            target = self._factory(row)
            self._built[row.name] = (key, target)
            return target

    def all(self) -> list[StackTarget]:
        with self._lock:
            return [*self._overrides.values(), *(t for _, t in self._built.values())]
