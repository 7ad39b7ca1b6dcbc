"""Check a service's templates against the facts sheet of the images they run.

A real apiserver checks objects, not containers: an image tag that was never published, a
user id the image does not expect, a port it does not listen on, a probe path it does not
serve or a volume mounted where it does not write all pass every schema, policy and
cluster check, and fail only when a municipality's pod starts. The facts sheet
(:class:`ImageFacts`, per image repository, in the service's file or the shared
``catalog/_images.yaml``) records what the upstream image expects, read from its sources at
one tag and citing them. This module holds the two checks ``catalog validate`` and
publishing run with it:

- :func:`check_sheet` (static): every image a version uses has a sheet entry that lists
  its tag with where the tag's publication is shown, so changing a tag without updating
  the sheet is refused; and no entry of the service's own sheet is left unused;
- :func:`check_containers` (on a render): every container of an image with a sheet entry
  runs as its user, exposes only its ports, probes only its health paths, mounts only
  where it writes (or reads configuration) and sets only environment variables it reads.

This module must not know about Jinja2, Kubernetes schemas or the database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from controlplane.catalog.models import ImageFacts, ImageFactsSheet, ServiceDefinition

#: ``(key path, message)``, as the other checks of ``catalog.validation`` yield them.
Problem = tuple[str, str]

_POD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"})


def repository(image: str) -> str:
    """The image reference without its tag or digest (``postgis/postgis:16-3.5`` →
    ``postgis/postgis``); a registry port (``host:5000/x``) stays."""
    name = image.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def tag(image: str) -> str:
    """The tag of an image reference; for one pinned by digest only, the digest (what a sheet
    lists it by); empty without either."""
    name, _at, digest = image.partition("@")
    _head, sep, tail = name.rpartition(":")
    return tail if sep and "/" not in tail else digest


def sheet_for(definition: ServiceDefinition, shared: ImageFactsSheet) -> ImageFactsSheet:
    """The facts that apply to a service: its own entries over the shared ones."""
    return {**shared, **definition.facts}


def check_sheet(definition: ServiceDefinition, shared: ImageFactsSheet) -> Iterator[Problem]:
    """Every image tag of every version is covered by a sheet entry that lists it."""
    sheet = sheet_for(definition, shared)
    used: set[str] = set()
    for index, version in enumerate(definition.versions):
        for role, image in version.images.items():
            repo = repository(image)
            used.add(repo)
            facts = sheet.get(repo)
            key = f"versions[{index}].images.{role}"
            if facts is None:
                yield (
                    key,
                    f"{image!r} has no facts sheet entry: add facts.{repo}, read from the "
                    "upstream sources at that tag (docs/catalog.md, 'Facts sheets')",
                )
            elif tag(image) not in facts.tags:
                yield (
                    key,
                    f"the tag {tag(image)!r} of {image!r} is not in facts.{repo}.tags "
                    f"(it lists {', '.join(sorted(facts.tags))}): add it with the upstream "
                    "git tag and the workflow that publishes it, and re-read the facts if "
                    "they changed",
                )
    for repo in sorted(set(definition.facts) - used):
        yield (f"facts.{repo}", "no version uses this image: remove the entry")
    for repo, facts in definition.facts.items():
        tagged = {t.git_tag for t in facts.tags.values() if t.git_tag is not None}
        if tagged and facts.read_at not in tagged:
            yield (
                f"facts.{repo}.read_at",
                f"{facts.read_at!r} is none of the upstream tags in facts.{repo}.tags: read "
                "the facts at a tag the catalogue uses",
            )


def check_containers(
    sheet: ImageFactsSheet, objects: Sequence[Mapping[str, Any]]
) -> Iterator[Problem]:
    """Each rendered container of an image with a sheet entry, against that entry.

    Key paths name the object and container (``Deployment/web: containers[api]``); the
    message names the sheet entry and where its facts were read.
    """
    config_keys = _config_keys(objects)
    for obj in objects:
        pod = _pod_spec(obj)
        if pod is None:
            continue
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        pod_user = (pod.get("securityContext") or {}).get("runAsUser")
        for field in ("initContainers", "containers"):
            for container in pod.get(field) or []:
                repo = repository(str(container.get("image", "")))
                facts = sheet.get(repo)
                if facts is None:
                    continue
                key = f"{where}: {field}[{container.get('name')}]"
                for problem in _check_container(container, pod_user, facts, config_keys):
                    yield key, f"{problem} (facts.{repo}, {_cited(facts)})"


def _check_container(
    container: Mapping[str, Any],
    pod_user: Any,
    facts: ImageFacts,
    config_keys: Mapping[tuple[str, str], Sequence[str]],
) -> Iterator[str]:
    user = (container.get("securityContext") or {}).get("runAsUser", pod_user)
    if facts.user is not None and user != facts.user:
        yield f"runs as user {user}, but the image expects user {facts.user}"
    for port in container.get("ports") or []:
        if port.get("containerPort") not in facts.ports:
            yield (
                f"declares port {port.get('containerPort')}, but the image listens on "
                f"{_listed(facts.ports)}"
            )
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = (container.get(probe_name) or {}).get("httpGet")
        if not http:
            continue
        path = str(http.get("path", "/")).split("?", 1)[0]
        if path not in facts.health:
            yield (
                f"{probe_name} calls {path}, but the image serves health on {_listed(facts.health)}"
            )
        port = http.get("port")
        if isinstance(port, int) and port not in facts.ports:
            yield f"{probe_name} calls port {port}, but the image listens on {_listed(facts.ports)}"
    for mount in container.get("volumeMounts") or []:
        path = str(mount.get("mountPath", ""))
        writable = _under(path, facts.writable)
        if mount.get("readOnly"):
            if not writable and not _under(path, facts.read_only):
                yield (
                    f"mounts {path} read-only, which is neither a configuration path "
                    f"({_listed(facts.read_only)}) nor a writable one ({_listed(facts.writable)})"
                )
        elif not writable:
            yield f"mounts {path}, but the image writes only to {_listed(facts.writable)}"
    names = [str(e.get("name")) for e in container.get("env") or []]
    for source in container.get("envFrom") or []:
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            name = (source.get(ref) or {}).get("name")
            if name:
                prefix = str(source.get("prefix", ""))
                names.extend(prefix + k for k in config_keys.get((kind, str(name)), ()))
    unread = sorted(set(names) - set(facts.env) - set(facts.platform_env))
    if unread:
        yield (
            f"sets {', '.join(unread)}, which the image does not read (add the name to env "
            "where the upstream sources read it, else remove it from the template)"
        )


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind == "Pod":
        return spec
    elif kind not in _POD_KINDS:
        return None
    return (spec.get("template") or {}).get("spec") or {}


def _config_keys(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """The keys of every rendered ConfigMap and Secret: what ``envFrom`` turns into names."""
    out: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        kind = obj.get("kind")
        if kind not in ("ConfigMap", "Secret"):
            continue
        name = str((obj.get("metadata") or {}).get("name"))
        keys = [*(obj.get("data") or {}), *(obj.get("stringData") or {})]
        out[str(kind), name] = keys
    return out


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _listed(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) or "nothing"


def _cited(facts: ImageFacts) -> str:
    return f"read at {facts.read_at}"
