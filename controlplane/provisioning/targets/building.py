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


def check_config(kind: TargetKind, config: Mapping[str, Any]) -> None:
    """Refuse, before it is stored, a target config that could never be built.

    Kubernetes: the kubeconfig must exist on the server, parse as a kubeconfig (the
    official client's loader) and have the named context (or a current context) with a
    cluster that has a server. Nothing of the file is echoed: it may hold credentials, or
    not be a kubeconfig at all (``/etc/shadow``). Credentials are not loaded here, so no
    ``exec`` plugin runs. GitOps paths are checked by ``placement.create_target``.
    """
    if kind != TargetKind.KUBERNETES or config.get("in_cluster"):
        return
    from kubernetes.config.kube_config import (
        KUBE_CONFIG_DEFAULT_LOCATION,
        KubeConfigLoader,
        KubeConfigMerger,
    )

    given = config.get("kubeconfig")
    context = config.get("context")
    where = f"file {given!r}" if given else "the server's default kubeconfig file"
    hint = (
        "Give --kubeconfig a kubeconfig file readable by the control plane's server and "
        "--kube-context one of its contexts (`kubectl config get-contexts --kubeconfig FILE`), "
        "or use --in-cluster."
    )
    if given and not _is_file(given):
        raise InvalidInput(
            f"There is no kubeconfig file {given!r} on the server.",
            errors=[ErrorItem("config.kubeconfig", "no such file on the server")],
            hint=hint,
        )
    try:
        location = str(Path(given).expanduser()) if given else KUBE_CONFIG_DEFAULT_LOCATION
        merged = KubeConfigMerger(location).config  # type: ignore[no-untyped-call]
        raw = merged.value if merged is not None else None
        if not isinstance(raw, dict) or not raw.get("contexts"):
            raise ValueError("not a kubeconfig: no contexts")
    except Exception:  # the loader raises whatever the file's content provokes
        # Not chained: a YAML error quotes the file, and the cause would reach the logs.
        raise InvalidInput(
            f"The {where} cannot be read as a kubeconfig.",
            errors=[ErrorItem("config.kubeconfig", "not a readable kubeconfig")],
            hint=hint,
        ) from None
    # The merger wraps each list item in a ConfigNode (its ``value`` is the plain dict).
    entries = [getattr(c, "value", c) for c in raw["contexts"]]
    names = {e.get("name") for e in entries if isinstance(e, dict)}
    if context is not None and context not in names:
        raise InvalidInput(
            f"The kubeconfig {where} has no context {context!r}.",
            errors=[ErrorItem("config.context", "no such context in the kubeconfig")],
            hint=hint,
        )
    try:
        loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged, active_context=context
        )
        cluster = loader._cluster  # set by the constructor; the client has no public accessor
        if not cluster or not cluster["server"]:
            raise ValueError("no server")
    except Exception:
        field = "config.context" if context is None else "config.kubeconfig"
        raise InvalidInput(
            f"The kubeconfig {where} has no usable "
            + ("current context" if context is None else f"cluster for context {context!r}")
            + ".",
            errors=[ErrorItem(field, "needs a context whose cluster has a server")],
            hint=hint,
        ) from None


def _is_file(path: str) -> bool:
    try:
        return Path(path).expanduser().is_file()
    except (OSError, RuntimeError):  # a name too long, ~nobody
        return False


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
