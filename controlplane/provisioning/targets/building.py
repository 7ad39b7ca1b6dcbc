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
from typing import TYPE_CHECKING, Any

from controlplane.errors import ErrorItem, InvalidInput
from controlplane.provisioning.models import Target, TargetKind
from controlplane.provisioning.targets import StackTarget
from controlplane.provisioning.targets.gitops import GitOpsTarget
from controlplane.provisioning.targets.sealing import Sealer

if TYPE_CHECKING:
    from controlplane.kube.client import KubeClient

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
            observer=_observer(row.name, config),
        )
    if row.kind == TargetKind.KUBERNETES:
        from controlplane.provisioning.targets.kubernetes import KubernetesTarget

        return KubernetesTarget.from_config(row.name, config)
    raise InvalidInput(
        f"Target {row.name!r} has an unknown kind {row.kind!r}.",
        errors=[ErrorItem(f"targets.{row.name}.kind", "must be kubernetes or gitops")],
    )


def _observer(name: str, config: Mapping[str, Any]) -> KubeClient | None:
    """Read access to the cluster a GitOps target feeds (``observe_kubeconfig``), if given."""
    kubeconfig = config.get("observe_kubeconfig")
    if not kubeconfig:
        return None
    from controlplane.provisioning.targets.kubernetes import KubernetesTarget

    observing = {"kubeconfig": kubeconfig, "context": config.get("observe_context")}
    return KubernetesTarget.from_config(name, observing).port


def check_config(kind: TargetKind, config: Mapping[str, Any]) -> None:
    """Refuse, before it is stored, a target config that could never be built.

    Kubernetes: the kubeconfig must exist on the server, parse as a kubeconfig (the
    official client's loader) and have the named context (or a current context) with a
    cluster that has a server. Nothing of the file is echoed: it may hold credentials, or
    not be a kubeconfig at all (``/etc/shadow``). Credentials are not loaded here, so no
    ``exec`` plugin runs. GitOps paths are checked by ``placement.create_target``.
    ``tls_issuer`` (either kind) must name a ClusterIssuer by a DNS-1123 subdomain.
    """
    _check_tls_issuer(config.get("tls_issuer"))
    if kind == TargetKind.GITOPS:
        if config.get("observe_context") and not config.get("observe_kubeconfig"):
            raise InvalidInput(
                "observe_context needs observe_kubeconfig.",
                errors=[ErrorItem("config.observe_context", "needs observe_kubeconfig")],
                hint="Give --observe-kubeconfig FILE with --observe-context NAME.",
            )
        if config.get("observe_kubeconfig"):
            _check_kubeconfig(
                config.get("observe_kubeconfig"),
                config.get("observe_context"),
                ("config.observe_kubeconfig", "config.observe_context"),
                "Give --observe-kubeconfig a kubeconfig file readable by the control plane's "
                "server and --observe-context one of its contexts "
                "(`kubectl config get-contexts --kubeconfig FILE`).",
            )
        return
    if kind != TargetKind.KUBERNETES or config.get("in_cluster"):
        return
    _check_kubeconfig(
        config.get("kubeconfig"),
        config.get("context"),
        ("config.kubeconfig", "config.context"),
        "Give --kubeconfig a kubeconfig file readable by the control plane's server and "
        "--kube-context one of its contexts (`kubectl config get-contexts --kubeconfig FILE`), "
        "or use --in-cluster.",
    )


def _check_tls_issuer(given: Any) -> None:
    """``{"kind": "ClusterIssuer", "name": NAME}`` or absent (see rendering/tls.py)."""
    if given is None:
        return
    from controlplane.rendering.tls import ISSUER_KINDS, valid_name

    hint = "Give --tls-cluster-issuer the name of a cert-manager ClusterIssuer, e.g. letsencrypt."
    if not isinstance(given, Mapping) or given.get("kind", "ClusterIssuer") not in ISSUER_KINDS:
        raise InvalidInput(
            "tls_issuer must be a cert-manager ClusterIssuer.",
            errors=[ErrorItem("config.tls_issuer.kind", "must be ClusterIssuer")],
            hint=hint,
        )
    if not valid_name(given.get("name")):
        raise InvalidInput(
            "The TLS issuer name is not a DNS-1123 subdomain.",
            errors=[ErrorItem("config.tls_issuer.name", "must be a DNS-1123 subdomain")],
            hint=hint,
        )


def _check_kubeconfig(given: Any, context: Any, fields: tuple[str, str], hint: str) -> None:
    """The kubeconfig exists, parses and has the context (or a current one) with a server."""
    from kubernetes.config.kube_config import (
        KUBE_CONFIG_DEFAULT_LOCATION,
        KubeConfigLoader,
        KubeConfigMerger,
    )

    kube_field, context_field = fields
    where = f"file {given!r}" if given else "the server's default kubeconfig file"
    if given and not _is_file(given):
        raise InvalidInput(
            f"There is no kubeconfig file {given!r} on the server.",
            errors=[ErrorItem(kube_field, "no such file on the server")],
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
            errors=[ErrorItem(kube_field, "not a readable kubeconfig")],
            hint=hint,
        ) from None
    # The merger wraps each list item in a ConfigNode (its ``value`` is the plain dict).
    entries = [getattr(c, "value", c) for c in raw["contexts"]]
    names = {e.get("name") for e in entries if isinstance(e, dict)}
    if context is not None and context not in names:
        raise InvalidInput(
            f"The kubeconfig {where} has no context {context!r}.",
            errors=[ErrorItem(context_field, "no such context in the kubeconfig")],
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
        field = context_field if context is None else kube_field
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
