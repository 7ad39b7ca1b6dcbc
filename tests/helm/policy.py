"""The platform security policy, checked on the chart's own objects.

The rules of DESIGN §4 for workloads, written here rather than borrowed from
``controlplane.rendering.policy``: that checker judges *tenant stacks* (it refuses
cluster-scoped kinds, namespaces set by a template and images the catalogue does not
declare), which the chart that deploys the control plane legitimately has.

This module must not know about Helm or the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Every breach of the policy in one object, as ``<kind>/<name> <container>: rule``."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    found: list[str] = []
    pod_ctx = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        found.append(f"{where}: uses a host namespace")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"{where}: hostPath volume {volume['name']}")
    for container in _containers(spec):
        at = f"{where} {container['name']}"
        ctx = container.get("securityContext") or {}
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            found.append(f"{at}: runAsNonRoot is not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            found.append(f"{at}: runs as UID 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{at}: allowPrivilegeEscalation is not false")
        if ctx.get("privileged"):
            found.append(f"{at}: privileged")
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            found.append(f"{at}: capabilities do not drop ALL")
        if (ctx.get("capabilities") or {}).get("add"):
            found.append(f"{at}: adds capabilities")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            found.append(f"{at}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(section) or {}).get(resource):
                    found.append(f"{at}: no {resource} in resources.{section}")
        image = str(container.get("image", ""))
        if "@sha256:" not in image:
            name = image.rsplit("/", 1)[-1]
            if ":" not in name:
                found.append(f"{at}: image {image!r} has no tag")
            elif name.rsplit(":", 1)[1] == "latest":
                found.append(f"{at}: image {image!r} uses :latest")
        for port in container.get("ports") or []:
            if "hostPort" in port:
                found.append(f"{at}: hostPort {port['hostPort']}")
    return found
