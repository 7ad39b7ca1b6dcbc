"""The platform security policy for the objects a service stack renders.

What a stack may contain, whatever its templates say (each breach is one
:class:`ErrorItem` with the rule and the fix):

- Pod Security Standard *restricted*: ``runAsNonRoot: true`` (pod or every container),
  no ``runAsUser: 0``, ``allowPrivilegeEscalation: false``, capabilities ``drop: [ALL]``
  and at most ``NET_BIND_SERVICE`` added, seccomp ``RuntimeDefault`` or ``Localhost``,
  not privileged, only the volume types the standard allows;
- no host namespaces, ``hostPath`` volumes or ``hostPort``;
- CPU and memory requests *and* limits on every container and init container;
- images with an explicit tag other than ``latest`` (or a digest), and only the images
  the catalogue version declares;
- ``automountServiceAccountToken: false`` unless the pod template declares
  ``city-platform.be/needs-service-account-token: "true"``;
- no ``metadata.namespace`` (the renderer sets it), no cluster-scoped kinds and none of
  the kinds the namespace baseline owns (quota, limits, network policies);
- generated credentials only inside ``Secret`` objects.

This module must not know about templates, parameters or how objects are applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from controlplane.errors import ErrorItem
from controlplane.rendering.naming import NEEDS_TOKEN_ANNOTATION

#: Kinds that live outside namespaces; a stack may not create any of them.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IPAddress",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
        "SelfSubjectRulesReview",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersionMigration",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)
#: Kinds the namespace baseline owns: a stack declares network allows in its catalogue
#: file instead, and its quota comes from the plan.
BASELINE_KINDS = frozenset({"ResourceQuota", "LimitRange", "NetworkPolicy"})
#: Volume types the Pod Security Standard *restricted* allows.
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
_SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})


def pod_templates(obj: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(json path, pod template)`` of a workload (``metadata`` + ``spec``)."""
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return
    if kind == "Pod":
        yield "", obj
    elif kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        template = spec.get("template")
        if isinstance(template, Mapping):
            yield "spec.template.", template
    elif kind == "CronJob":
        job = spec.get("jobTemplate")
        template = job.get("spec", {}).get("template") if isinstance(job, Mapping) else None
        if isinstance(template, Mapping):
            yield "spec.jobTemplate.spec.template.", template


def check_object(
    obj: Mapping[str, Any], where: str, allowed_images: frozenset[str]
) -> list[ErrorItem]:
    """Every policy breach of one object rendered by a stack's templates."""
    errors: list[ErrorItem] = []
    kind = obj.get("kind", "")
    metadata = obj.get("metadata", {})
    if isinstance(metadata, Mapping) and "namespace" in metadata:
        errors.append(
            ErrorItem(
                f"{where}: metadata.namespace",
                "a template must not set the namespace; remove it, the platform puts every "
                "object in the instance's namespace",
            )
        )
    if kind in CLUSTER_SCOPED_KINDS:
        errors.append(
            ErrorItem(
                f"{where}: kind",
                f"{kind} is cluster-scoped and a service stack may only create namespaced "
                "objects; remove it (the platform creates the namespace itself)",
            )
        )
    elif kind in BASELINE_KINDS:
        errors.append(
            ErrorItem(
                f"{where}: kind",
                f"{kind} objects belong to the platform's namespace baseline; remove it and "
                "declare network allows under `network:` in the catalogue file",
            )
        )
    for prefix, template in pod_templates(obj):
        errors.extend(_check_pod(template, f"{where}: {prefix}", allowed_images))
    return errors


def _check_pod(
    template: Mapping[str, Any], at: str, allowed_images: frozenset[str]
) -> list[ErrorItem]:
    errors: list[ErrorItem] = []
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        return errors
    meta = template.get("metadata") or {}
    annotations = meta.get("annotations") or {} if isinstance(meta, Mapping) else {}

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            errors.append(
                ErrorItem(f"{at}spec.{field}", f"host namespaces are not allowed; remove {field}")
            )
    if spec.get("automountServiceAccountToken") is not False and (
        annotations.get(NEEDS_TOKEN_ANNOTATION) != "true"
    ):
        errors.append(
            ErrorItem(
                f"{at}spec.automountServiceAccountToken",
                "must be false; set `automountServiceAccountToken: false`, or annotate the "
                f'pod template with `{NEEDS_TOKEN_ANNOTATION}: "true"` if it needs the token',
            )
        )
    for i, volume in enumerate(spec.get("volumes") or []):
        if not isinstance(volume, Mapping):
            continue
        types = set(volume) - {"name"}
        if "hostPath" in types:
            errors.append(
                ErrorItem(
                    f"{at}spec.volumes[{i}].hostPath",
                    "hostPath volumes are not allowed; use a persistentVolumeClaim or emptyDir",
                )
            )
        elif types - ALLOWED_VOLUME_TYPES:
            bad = ", ".join(sorted(types - ALLOWED_VOLUME_TYPES))
            errors.append(
                ErrorItem(
                    f"{at}spec.volumes[{i}]",
                    f"volume type {bad} is not allowed by the restricted Pod Security Standard; "
                    "use configMap, secret, emptyDir, persistentVolumeClaim, projected, "
                    "downwardAPI, csi or ephemeral",
                )
            )

    pod_sc = spec.get("securityContext") or {}
    if not isinstance(pod_sc, Mapping):
        pod_sc = {}
    if pod_sc.get("runAsUser") == 0:
        errors.append(
            ErrorItem(f"{at}spec.securityContext.runAsUser", "must not be 0 (root); use a UID > 0")
        )
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        errors.append(
            ErrorItem(
                f"{at}spec.securityContext.seccompProfile.type",
                "must be RuntimeDefault or Localhost",
            )
        )

    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            if isinstance(container, Mapping):
                errors.extend(
                    _check_container(
                        container, f"{at}spec.{group}[{i}]", pod_sc, pod_seccomp, allowed_images
                    )
                )
    return errors


def _check_container(
    container: Mapping[str, Any],
    at: str,
    pod_sc: Mapping[str, Any],
    pod_seccomp: Any,
    allowed_images: frozenset[str],
) -> list[ErrorItem]:
    errors: list[ErrorItem] = []
    image = container.get("image")
    if isinstance(image, str):
        problem = image_problem(image)
        if problem:
            errors.append(ErrorItem(f"{at}.image", problem))
        elif image not in allowed_images:
            errors.append(
                ErrorItem(
                    f"{at}.image",
                    f"image {image!r} is not one of the images this version declares; "
                    "use `{{ images.<role> }}` and list the image under the version's `images`",
                )
            )
    else:
        errors.append(ErrorItem(f"{at}.image", "every container needs an image"))

    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {} if isinstance(resources, Mapping) else {}
        missing = [
            r for r in ("cpu", "memory") if not isinstance(values, Mapping) or r not in values
        ]
        if missing:
            errors.append(
                ErrorItem(
                    f"{at}.resources.{section}",
                    f"{' and '.join(missing)} {section} missing; every container needs cpu and "
                    "memory requests and limits (use `{{ plan.cpu.limit }}` …)",
                )
            )

    sc = container.get("securityContext") or {}
    if not isinstance(sc, Mapping):
        sc = {}
    if sc.get("privileged"):
        errors.append(
            ErrorItem(f"{at}.securityContext.privileged", "privileged containers are not allowed")
        )
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.append(
            ErrorItem(
                f"{at}.securityContext.allowPrivilegeEscalation",
                "must be false; set `allowPrivilegeEscalation: false`",
            )
        )
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root is not True:
        errors.append(
            ErrorItem(
                f"{at}.securityContext.runAsNonRoot",
                "must be true; set `runAsNonRoot: true` on the container or the pod",
            )
        )
    if sc.get("runAsUser") == 0:
        errors.append(
            ErrorItem(f"{at}.securityContext.runAsUser", "must not be 0 (root); use a UID > 0")
        )
    capabilities = sc.get("capabilities") or {}
    if not isinstance(capabilities, Mapping):
        capabilities = {}
    if "ALL" not in (capabilities.get("drop") or []):
        errors.append(
            ErrorItem(
                f"{at}.securityContext.capabilities.drop",
                'must contain "ALL"; set `capabilities: {drop: [ALL]}`',
            )
        )
    added = set(capabilities.get("add") or []) - _ALLOWED_CAPABILITIES
    if added:
        errors.append(
            ErrorItem(
                f"{at}.securityContext.capabilities.add",
                f"{', '.join(sorted(map(str, added)))} not allowed; only NET_BIND_SERVICE may be "
                "added",
            )
        )
    seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
    if seccomp not in _SECCOMP_OK:
        errors.append(
            ErrorItem(
                f"{at}.securityContext.seccompProfile.type",
                "must be RuntimeDefault or Localhost; set `seccompProfile: {type: RuntimeDefault}` "
                "on the pod or the container",
            )
        )
    for j, port in enumerate(container.get("ports") or []):
        if isinstance(port, Mapping) and port.get("hostPort"):
            errors.append(
                ErrorItem(
                    f"{at}.ports[{j}].hostPort",
                    "host ports are not allowed; expose the port with a Service",
                )
            )
    return errors


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if "@" in image:
        return None if image.rsplit("@", 1)[1].startswith("sha256:") else "invalid digest"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag; pin an explicit version tag (not `latest`) or a digest"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the `latest` tag; pin an explicit version tag or a digest"
    return None


def leaked_secrets(obj: Mapping[str, Any], where: str, values: frozenset[str]) -> list[ErrorItem]:
    """Generated credentials outside ``stringData``/``data`` of a ``Secret``."""
    if not values:
        return []
    errors: list[ErrorItem] = []
    is_secret = obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"
    for path, text in _strings(obj, ""):
        if is_secret and (path.startswith(("stringData.", "data."))):
            continue
        if any(value in text for value in values):
            errors.append(
                ErrorItem(
                    f"{where}: {path}",
                    "a generated credential (`secrets.*`) may only appear in the stringData of "
                    "a Secret; put it in a Secret and reference it with secretKeyRef",
                )
            )
    return errors


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, str(key)
            yield from _strings(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
