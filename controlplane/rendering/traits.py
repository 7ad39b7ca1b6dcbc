"""Injected policy (traits): what every pod gets from the platform, not from its template.

Right after the templates render (before schemas and the security policy), the renderer
gives every pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
Pod) what the restricted Pod Security Standard and the platform ask for, when the
template leaves it out:

- pod ``securityContext.runAsNonRoot: true`` and ``seccompProfile: {type: RuntimeDefault}``
  (``runAsUser``, ``runAsGroup``, ``fsGroup`` … are image-specific and stay the template's);
- every container and init container ``securityContext.allowPrivilegeEscalation: false``
  and ``capabilities.drop: [ALL]``;
- pod ``automountServiceAccountToken: false`` (unless the pod template declares
  ``city-platform.be/needs-service-account-token: "true"``), and the same on every
  ``ServiceAccount``;
- a container without ``resources`` gets the plan's cpu and memory request and limit.

A template that sets one of these *differently* (``runAsNonRoot: false``, privileged,
escalation, capabilities without ``drop: [ALL]`` or with more than ``NET_BIND_SERVICE``
added, seccomp ``Unconfined``, a token without the annotation) is refused, naming the
template file (and line, when the key occurs once there), the object and the key path.
``policy`` still checks the result as the safety net.

This module must not know about Jinja2, YAML parsing or Kubernetes schemas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.errors import ErrorItem
from controlplane.rendering.naming import NEEDS_TOKEN_ANNOTATION
from controlplane.rendering.policy import pod_templates

#: Seccomp profile types the restricted standard allows (Localhost is the cluster's own).
_SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
_ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

#: ``(file, key)`` → the line of that key in the template source, or None.
LineOf = Callable[[str, str, Any], int | None]


def resources_from(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The container resources of a plan as the template context gives it (``plan.cpu`` …)."""
    return {
        "requests": {"cpu": plan["cpu"]["request"], "memory": plan["memory"]["request"]},
        "limits": {"cpu": plan["cpu"]["limit"], "memory": plan["memory"]["limit"]},
    }


def apply_traits(
    objects: list[tuple[str, dict[str, Any]]],
    *,
    resources: Mapping[str, Any],
    location: Callable[[str, int | None], str],
    source: Mapping[str, str],
) -> list[ErrorItem]:
    """Inject the traits into ``(file, object)`` pairs in place; the conflicts, one item each.

    ``location(file, line)`` names a template file as the renderer does
    (``templates/<folder>/<file>:<line>``); ``source`` is the template text by file,
    used only to find the line of an offending key.
    """
    errors: list[ErrorItem] = []
    for file, obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"

        def refuse(
            path: str, message: str, value: Any, file: str = file, where: str = where
        ) -> None:
            key = re.split(r"[.\[]", path.rsplit(".", 1)[-1])[0]
            line = _line_of(source.get(file, ""), key, value)
            errors.append(ErrorItem(f"{location(file, line)}: {where}: {path}", message))

        if obj.get("kind") == "ServiceAccount" and obj.get("apiVersion") == "v1":
            if obj.get("automountServiceAccountToken", False) is not False:
                refuse(
                    "automountServiceAccountToken",
                    "the platform sets this to false on every service account; remove it, and "
                    "annotate the pod template that needs the token with "
                    f'`{NEEDS_TOKEN_ANNOTATION}: "true"` instead',
                    obj.get("automountServiceAccountToken"),
                )
            else:
                obj["automountServiceAccountToken"] = False
        for prefix, template in pod_templates(obj):
            _pod(template, prefix, resources, refuse)
    return errors


Refuse = Callable[[str, str, Any], None]


def refused_key(item: ErrorItem) -> tuple[str, str]:
    """``(Kind/name, last key)`` of a trait or policy item: the same refusal in both.

    A pod's ``runAsNonRoot: false`` is one mistake, which the policy would report again
    on each container; the renderer keeps the trait's item, which names the file.
    """
    head, _, path = item.location.rpartition(": ")
    where = head.rsplit(": ", 1)[-1]
    return where, path.rsplit(".", 1)[-1]


def _pod(template: Any, prefix: str, resources: Mapping[str, Any], refuse: Refuse) -> None:
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return
    meta = template.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    needs_token = isinstance(annotations, dict) and (
        annotations.get(NEEDS_TOKEN_ANNOTATION) == "true"
    )
    at = f"{prefix}spec."
    token = spec.get("automountServiceAccountToken")
    if token is None:
        spec["automountServiceAccountToken"] = False
    elif token is not False and not needs_token:
        refuse(
            f"{at}automountServiceAccountToken",
            "the platform sets this to false; remove it, or annotate the pod template with "
            f'`{NEEDS_TOKEN_ANNOTATION}: "true"` if the pod really needs its token',
            token,
        )

    context = spec.get("securityContext")
    if context is None:
        context = spec["securityContext"] = {}
    if isinstance(context, dict):
        _non_root(context, f"{at}securityContext", refuse)
        _seccomp(context, f"{at}securityContext", refuse, inject=True)

    for group in ("initContainers", "containers"):
        containers = spec.get(group)
        if not isinstance(containers, list):
            continue
        for i, container in enumerate(containers):
            if isinstance(container, dict):
                _container(container, f"{at}{group}[{i}]", resources, refuse)


def _container(
    container: dict[str, Any], at: str, resources: Mapping[str, Any], refuse: Refuse
) -> None:
    if not container.get("resources"):
        container["resources"] = {k: dict(v) for k, v in resources.items()}
    context = container.get("securityContext")
    if context is None:
        context = container["securityContext"] = {}
    if not isinstance(context, dict):
        return
    sc = f"{at}.securityContext"
    if context.get("privileged", False) is not False:
        refuse(
            f"{sc}.privileged",
            "privileged containers are not allowed; remove `privileged`",
            context.get("privileged"),
        )
    escalation = context.get("allowPrivilegeEscalation")
    if escalation is None:
        context["allowPrivilegeEscalation"] = False
    elif escalation is not False:
        refuse(
            f"{sc}.allowPrivilegeEscalation",
            "the platform forbids privilege escalation; remove `allowPrivilegeEscalation` "
            "(it is set to false for every container)",
            escalation,
        )
    if "runAsNonRoot" in context:
        _non_root(context, sc, refuse)
    _seccomp(context, sc, refuse, inject=False)

    capabilities = context.get("capabilities")
    if capabilities is None:
        capabilities = context["capabilities"] = {}
    if not isinstance(capabilities, dict):
        return
    drop = capabilities.get("drop")
    if drop is None:
        capabilities["drop"] = ["ALL"]
    elif not isinstance(drop, list) or "ALL" not in drop:
        refuse(
            f"{sc}.capabilities.drop",
            "every container drops all capabilities; remove `drop` (the platform sets "
            "`drop: [ALL]`) or make it `[ALL]`",
            drop,
        )
    added = capabilities.get("add") or []
    extra = sorted(str(c) for c in added if c not in _ALLOWED_CAPABILITIES)
    if not isinstance(added, list) or extra:
        refuse(
            f"{sc}.capabilities.add",
            f"capabilities {', '.join(extra) or str(added)} may not be added; only "
            "NET_BIND_SERVICE may be",
            added,
        )


def _non_root(context: dict[str, Any], at: str, refuse: Refuse) -> None:
    value = context.get("runAsNonRoot")
    if value is None:
        context["runAsNonRoot"] = True
    elif value is not True:
        refuse(
            f"{at}.runAsNonRoot",
            "containers never run as root on the platform; remove `runAsNonRoot` (it is set "
            "to true for every pod) and run the image as a non-root user",
            value,
        )


def _seccomp(context: dict[str, Any], at: str, refuse: Refuse, *, inject: bool) -> None:
    profile = context.get("seccompProfile")
    if profile is None:
        if inject:
            context["seccompProfile"] = {"type": "RuntimeDefault"}
        return
    kind = profile.get("type") if isinstance(profile, Mapping) else None
    if kind not in _SECCOMP_OK:
        refuse(
            f"{at}.seccompProfile.type",
            "the seccomp profile must be the runtime's default (or a Localhost profile); "
            "remove `seccompProfile` and the platform sets RuntimeDefault",
            kind,
        )


def _line_of(text: str, key: str, value: Any) -> int | None:
    """The line of ``key:`` in a template's source when it can be told apart, else None."""
    if not text or not key:
        return None
    pattern = re.compile(rf"(?<![\w.-]){re.escape(key)}\s*:")
    lines = [n for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    if len(lines) == 1:
        return lines[0]
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, str):
        shown = value
    else:
        return None
    source = text.splitlines()
    narrowed = [n for n in lines if shown in source[n - 1]]
    return narrowed[0] if len(narrowed) == 1 else None
