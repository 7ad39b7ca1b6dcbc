"""Roll pods when the ConfigMaps and Secrets they read change.

Kubernetes starts a rollout only when a workload's pod template changes. A pod reads a
ConfigMap or Secret through ``env``/``envFrom`` once, when it starts; so a catalogue
correction, a configuration-only upgrade, a parameter change or a credential rotation that
changes only a ConfigMap or Secret is applied, and the running pods keep the old values.
Helm charts solve this with a ``checksum/config`` pod annotation; this module does the
same for every stack: each pod template that rolls (Deployment, StatefulSet, DaemonSet,
CronJob's ``jobTemplate``) gets :data:`ANNOTATION`, a digest of exactly the ConfigMaps and
Secrets of the same stack that it references (env, envFrom, volumes, projected volumes; in
containers and init containers). A template that references none gets no annotation, so it
does not roll for unrelated changes; references to objects outside the stack are ignored
(the platform does not render them, so it cannot know their content).

Not stamped: a Job (its pod template is immutable once it started, the apiserver would
refuse every configuration change; a Job runs once anyway), a ReplicaSet (a changed template
does not replace its pods) and a bare Pod (it never restarts for an annotation).

The digest is an HMAC keyed per instance with a key derived from the server secret, never a
plain hash: pod templates are readable by more people than Secrets are (and are copied to
every ReplicaSet and pod), and a Secret may hold only a low-entropy value a tenant chose
(an SMTP password parameter), which a plain sha256 would let anyone test guesses against.
The key also keeps equal configuration in two instances from showing as equal digests.

This module must not know about templates, catalogue files, the database or how objects
are applied.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from controlplane.catalog.models import canonical_json
from controlplane.rendering import policy

#: The pod template annotation that changes whenever referenced configuration changes.
ANNOTATION = "city-platform.be/config-digest"
#: The kinds whose pod template change replaces their pods (see the module docstring).
ROLLING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "CronJob"})
_DATA_FIELDS = ("data", "stringData", "binaryData")


def digest_key(server_secret: bytes, instance_id: str) -> bytes:
    """The instance's HMAC key for :data:`ANNOTATION`.

    The message cannot be one a credential is derived from (``secrets.derive_secret`` puts
    the instance id first), so the key is no credential of the instance and vice versa.
    """
    message = f"{ANNOTATION}\x00{instance_id}".encode()
    return hmac.new(server_secret, message, hashlib.sha256).digest()


def stamp_config_digests(stack: Iterable[dict[str, Any]], *, key: bytes) -> None:
    """Annotate every rolling pod template of ``stack`` that reads a ConfigMap or Secret of
    ``stack`` with the keyed digest of their data (in place)."""
    objects = list(stack)
    config: dict[tuple[str, str], Mapping[str, Any]] = {
        (str(obj["kind"]), str(obj["metadata"]["name"])): obj
        for obj in objects
        if obj.get("apiVersion") == "v1" and obj.get("kind") in {"ConfigMap", "Secret"}
    }
    if not config:
        return
    for obj in objects:
        if obj.get("kind") not in ROLLING_KINDS:
            continue
        for _, template in policy.pod_templates(obj):
            spec = template.get("spec")
            if not isinstance(spec, Mapping):
                continue
            used = sorted(ref for ref in references(spec) if ref in config)
            if not used:
                continue
            content = [
                [
                    kind,
                    name,
                    {f: config[kind, name][f] for f in _DATA_FIELDS if f in config[kind, name]},
                ]
                for kind, name in used
            ]
            value = hmac.new(key, canonical_json(content).encode(), hashlib.sha256).hexdigest()
            metadata = template.setdefault("metadata", {})  # type: ignore[attr-defined]
            if isinstance(metadata, dict):
                annotations = metadata.setdefault("annotations", {})
                if isinstance(annotations, dict):
                    annotations[ANNOTATION] = f"hmac-sha256:{value}"


def references(pod_spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(kind, name)`` of every ConfigMap and Secret a pod spec reads."""
    found: set[tuple[str, str]] = set()
    for container in _items(pod_spec.get("containers")) + _items(pod_spec.get("initContainers")):
        for env in _items(container.get("env")):
            source = env.get("valueFrom")
            if isinstance(source, Mapping):
                found.update(_named(source, "configMapKeyRef", "ConfigMap", "name"))
                found.update(_named(source, "secretKeyRef", "Secret", "name"))
        for env_from in _items(container.get("envFrom")):
            found.update(_named(env_from, "configMapRef", "ConfigMap", "name"))
            found.update(_named(env_from, "secretRef", "Secret", "name"))
    for volume in _items(pod_spec.get("volumes")):
        found.update(_named(volume, "configMap", "ConfigMap", "name"))
        found.update(_named(volume, "secret", "Secret", "secretName"))
        projected = volume.get("projected")
        if isinstance(projected, Mapping):
            for source in _items(projected.get("sources")):
                found.update(_named(source, "configMap", "ConfigMap", "name"))
                found.update(_named(source, "secret", "Secret", "name"))
    return found


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _named(
    holder: Mapping[str, Any], field: str, kind: str, name_key: str
) -> Iterator[tuple[str, str]]:
    ref = holder.get(field)
    if isinstance(ref, Mapping) and isinstance(ref.get(name_key), str):
        yield kind, ref[name_key]
