"""The emulated cluster state: objects, field ownership, namespaces and workload status.

The store is what the API server's registry and its controllers would do, reduced to what the
platform relies on: create/replace/patch/server-side apply/delete with resourceVersion,
generation, uid and managedFields; field ownership per manager with conflicts; namespace
termination; and Deployment/StatefulSet/Job status that a test controls. It knows nothing about
HTTP (``server.py`` maps requests onto it) and raises :class:`ApiError` for every refusal.
"""

from __future__ import annotations

import base64
import copy
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.kube_emulator.kinds import Kind, find_kind

Path = tuple[str, ...]

#: Metadata the server owns; never part of field ownership.
_SYSTEM_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "selfLink",
    }
)
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: Kinds whose names must be DNS-1123 labels rather than subdomains.
_LABEL_NAMED = frozenset({"Namespace", "Service"})
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class ApiError(Exception):
    """A refusal the real API server would answer with a ``Status`` body."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{kind.qualified} "{name}" not found',
        {"name": name, "group": kind.group, "kind": kind.plural},
    )


def invalid(kind: Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per (field, message), worded like the real server."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind.kind}{"." + kind.group if kind.group else ""} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
            ],
        },
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- field paths ----------------------------------------------------------------------------


def leaf_paths(obj: Mapping[str, Any], kind: Kind) -> dict[Path, Any]:
    """The fields an applier sets: leaf paths → values (lists are atomic, like untyped SSA).

    Server-owned metadata, ``apiVersion``/``kind`` and (for kinds with a status subresource)
    ``status`` are not owned by anyone.
    """
    result: dict[Path, Any] = {}

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, Mapping) and value:
            for key, child in value.items():
                walk(child, (*path, str(key)))
        else:
            result[path] = value

    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "status" and kind.has_status:
            continue
        if key == "metadata" and isinstance(value, Mapping):
            for mkey, mvalue in value.items():
                if mkey not in _SYSTEM_METADATA:
                    walk(mvalue, ("metadata", mkey))
            continue
        walk(value, (key,))
    return result


_MISSING = object()


def get_path(obj: Mapping[str, Any], path: Path) -> Any:
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return _MISSING
        current = current[key]
    return current


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Remove a leaf and the maps it leaves empty (never the top-level sections)."""
    parents: list[tuple[dict[str, Any], str]] = []
    current: Any = obj
    for key in path[:-1]:
        if not isinstance(current, dict) or key not in current:
            return
        parents.append((current, key))
        current = current[key]
    if isinstance(current, dict):
        current.pop(path[-1], None)
    for parent, key in reversed(parents[1:]):
        if parent[key] == {}:
            del parent[key]


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply-style merge: maps merge, everything else (lists included) replaces."""
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def merge_patch(base: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``null`` deletes)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(base) if isinstance(base, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    """Render owned paths as the ``FieldsV1`` trie the real server stores."""
    trie: dict[str, Any] = {}
    for path in sorted(paths):
        node = trie
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return trie


# -- the store -------------------------------------------------------------------------------


@dataclass
class Manager:
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    paths: set[Path]
    subresource: str = ""


@dataclass
class Stored:
    kind: Kind
    obj: dict[str, Any]
    managers: dict[str, Manager] = field(default_factory=dict)
    #: Monotonic time after which a terminating namespace disappears.
    gone_at: float | None = None

    def rendered(self) -> dict[str, Any]:
        out = copy.deepcopy(self.obj)
        out["metadata"]["managedFields"] = [
            {
                "manager": name,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(m.paths),
                **({"subresource": m.subresource} if m.subresource else {}),
            }
            for name, m in self.managers.items()
            if m.paths
        ]
        return out


Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name

READY_STATES = ("ready", "not-ready", "fail", "stalled")


class Store:
    """Thread-safe in-memory cluster state."""

    def __init__(self, *, namespace_delete_delay: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.namespace_delete_delay = namespace_delete_delay
        self._objects: dict[Key, Stored] = {}
        self._rv = 0
        #: (kind, namespace, name) with None as wildcard → readiness state of workloads.
        self._ready_rules: dict[tuple[str | None, str | None, str | None], str] = {}
        self.reset()

    # -- housekeeping ----------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self._objects.clear()
            self._ready_rules.clear()
            for name in DEFAULT_NAMESPACES:
                self._insert(find_kind("Namespace"), {"metadata": {"name": name}}, "", {})

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def purge_terminated(self) -> None:
        """Finish namespace deletions whose delay has passed (and everything inside)."""
        with self.lock:
            now = time.monotonic()
            for key, stored in list(self._objects.items()):
                if stored.gone_at is not None and stored.gone_at <= now:
                    self._drop_namespace(key[3])

    def finish_terminating(self) -> None:
        """Let every terminating namespace disappear now, whatever its delay."""
        with self.lock:
            for stored in self._objects.values():
                if stored.gone_at is not None:
                    stored.gone_at = 0.0
            self.purge_terminated()

    def _drop_namespace(self, name: str) -> None:
        for key in [k for k in self._objects if k[2] == name or k == ("", "namespaces", "", name)]:
            del self._objects[key]

    @staticmethod
    def key(kind: Kind, namespace: str | None, name: str) -> Key:
        return (kind.group, kind.plural, (namespace or "") if kind.namespaced else "", name)

    def _require_namespace(self, kind: Kind, namespace: str | None, creating: bool) -> None:
        if not kind.namespaced:
            return
        ns = self._objects.get(("", "namespaces", "", namespace or ""))
        if ns is None:
            raise not_found(find_kind("Namespace"), namespace or "")
        if creating and ns.gone_at is not None:
            raise ApiError(
                403,
                "Forbidden",
                f'{kind.plural} "…" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
            )

    # -- reads -----------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            stored = self._objects.get(self.key(kind, namespace, name))
            if stored is None:
                raise not_found(kind, name)
            return stored.rendered()

    def list(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of a kind, in one namespace or (``None``) in all."""
        with self.lock:
            return [
                s.rendered()
                for key, s in sorted(self._objects.items())
                if key[0] == kind.group
                and key[1] == kind.plural
                and (namespace is None or not kind.namespaced or key[2] == namespace)
            ]

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def iter_stored(self) -> Iterator[Stored]:
        return iter(list(self._objects.values()))

    # -- validation ------------------------------------------------------------------------

    def _validate(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        causes: list[tuple[str, str]] = []
        pattern = _DNS1123_LABEL if kind.kind in _LABEL_NAMED else _DNS1123_SUBDOMAIN
        if not name:
            causes.append(("metadata.name", "Required value: name is required"))
        elif len(name) > (63 if kind.kind in _LABEL_NAMED else 253) or not pattern.match(name):
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 '
                    f"{'label' if kind.kind in _LABEL_NAMED else 'subdomain'} must consist of "
                    "lower case alphanumeric characters, '-' or '.'",
                )
            )
        for key, value in (meta.get("labels") or {}).items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                causes.append(
                    (
                        f"metadata.labels[{key}]",
                        f"Invalid value: {value!r}: not a valid label value",
                    )
                )
        if kind.kind in ("Deployment", "StatefulSet"):
            spec = obj.get("spec") or {}
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get(
                "labels"
            ) or {}
            if not selector:
                causes.append(("spec.selector", "Required value"))
            elif any(template_labels.get(k) != v for k, v in selector.items()):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {template_labels!r}: `selector` does not match "
                        "template `labels`",
                    )
                )
        if kind.kind in ("Deployment", "StatefulSet", "Job"):
            pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            containers = pod.get("containers") or []
            if not containers:
                causes.append(("spec.template.spec.containers", "Required value"))
            for i, container in enumerate(containers):
                if not container.get("image"):
                    causes.append((f"spec.template.spec.containers[{i}].image", "Required value"))
        if causes:
            raise invalid(kind, name, causes)

    # -- writes ----------------------------------------------------------------------------

    def _insert(
        self, kind: Kind, obj: Mapping[str, Any], namespace: str, managers: dict[str, Manager]
    ) -> Stored:
        body = copy.deepcopy(dict(obj))
        body["apiVersion"] = kind.api_version
        body["kind"] = kind.kind
        meta = body.setdefault("metadata", {})
        meta.pop("managedFields", None)
        if kind.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        if kind.has_status:
            body.pop("status", None)
        if kind.kind == "Namespace":
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        _normalize(kind, body)
        stored = Stored(kind, body, managers)
        self._objects[self.key(kind, namespace, meta["name"])] = stored
        self._simulate_status(stored)
        return stored

    def _check_identity(self, kind: Kind, obj: Mapping[str, Any], name: str | None) -> str:
        if obj.get("kind") not in (None, kind.kind) or obj.get("apiVersion") not in (
            None,
            kind.api_version,
        ):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) and kind "
                f"({obj.get('kind')}) do not match the endpoint ({kind.api_version}, {kind.kind})",
            )
        body_name = (obj.get("metadata") or {}).get("name")
        if name is not None and body_name not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        return str(name or body_name or "")

    def create(
        self, kind: Kind, namespace: str | None, obj: Mapping[str, Any], manager: str
    ) -> dict[str, Any]:
        with self.lock:
            name = self._check_identity(kind, obj, None)
            body = copy.deepcopy(dict(obj))
            meta = body.setdefault("metadata", {})
            if not name and meta.get("generateName"):
                name = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
                meta["name"] = name
            self._validate(kind, body)
            self._require_namespace(kind, namespace, creating=True)
            if self.key(kind, namespace, name) in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{name}" already exists',
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            paths = set(leaf_paths(body, kind))
            stored = self._insert(
                kind,
                body,
                namespace or "",
                {manager: Manager("Update", kind.api_version, _now(), paths)},
            )
            return stored.rendered()

    def _commit(self, stored: Stored, new: dict[str, Any], *, status_only: bool = False) -> bool:
        """Store ``new`` if it differs; bump resourceVersion and (for spec changes) generation."""
        old = stored.obj
        _normalize(stored.kind, new)
        if new == old:
            return False
        if not status_only:
            old_body = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            new_body = {k: v for k, v in new.items() if k not in ("metadata", "status")}
            if old_body != new_body:
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        stored.obj = new
        if not status_only:
            self._simulate_status(stored)
        return True

    def _existing(self, kind: Kind, namespace: str | None, name: str) -> Stored:
        self._require_namespace(kind, namespace, creating=False)
        stored = self._objects.get(self.key(kind, namespace, name))
        if stored is None:
            raise not_found(kind, name)
        return stored

    def _take_over(self, stored: Stored, manager: str, changed: set[Path], sub: str) -> None:
        """An update moves the fields it changed to its manager (the real server's rule)."""
        for other in stored.managers.values():
            other.paths -= changed
        entry = stored.managers.setdefault(
            manager, Manager("Update", stored.kind.api_version, _now(), set(), sub)
        )
        entry.paths |= changed
        entry.time = _now()

    def replace(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        obj: Mapping[str, Any],
        manager: str,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        with self.lock:
            self._check_identity(kind, obj, name)
            stored = self._existing(kind, namespace, name)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv and rv != stored.obj["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": kind.group, "kind": kind.plural},
                )
            new = copy.deepcopy(stored.obj)
            if subresource == "status":
                new["status"] = copy.deepcopy(obj.get("status") or {})
            else:
                body = copy.deepcopy(dict(obj))
                self._validate(
                    kind, {**body, "metadata": {**body.get("metadata", {}), "name": name}}
                )
                keep_meta = {k: v for k, v in new["metadata"].items() if k in _SYSTEM_METADATA}
                status = new.get("status")
                new = body
                new["apiVersion"], new["kind"] = kind.api_version, kind.kind
                new["metadata"] = {**body.get("metadata", {}), **keep_meta}
                if kind.has_status:
                    new.pop("status", None)
                    if status is not None:
                        new["status"] = status
            before, after = leaf_paths(stored.obj, kind), leaf_paths(new, kind)
            changed = {p for p, v in after.items() if before.get(p, _MISSING) != v}
            for other in stored.managers.values():
                other.paths &= set(after)
            self._take_over(stored, manager, changed, subresource)
            self._commit(stored, new, status_only=subresource == "status")
            return stored.rendered()

    def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        manager: str,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Merge patch; strategic merge is treated the same (lists replace)."""
        with self.lock:
            stored = self._existing(kind, namespace, name)
            current = stored.rendered()
            current["metadata"].pop("managedFields", None)
            if subresource == "status":
                merged = copy.deepcopy(stored.obj)
                merged["status"] = merge_patch(current.get("status") or {}, patch.get("status"))
            else:
                merged = merge_patch(current, {k: v for k, v in patch.items() if k != "status"})
                if kind.has_status and "status" in stored.obj:
                    merged["status"] = copy.deepcopy(stored.obj["status"])
            for key in _SYSTEM_METADATA - {"managedFields"}:
                if key in stored.obj["metadata"]:
                    merged["metadata"][key] = stored.obj["metadata"][key]
            return self.replace(
                kind,
                namespace,
                name,
                {**merged, "metadata": {**merged["metadata"], "resourceVersion": None}},
                manager,
                subresource=subresource,
            )

    def apply(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        config: Mapping[str, Any],
        manager: str,
        *,
        force: bool,
        subresource: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """Server-side apply; returns the object and whether it was created."""
        with self.lock:
            self._check_identity(kind, config, name)
            if not config.get("apiVersion") or not config.get("kind"):
                raise ApiError(400, "BadRequest", "apply patches must set apiVersion and kind")
            key = self.key(kind, namespace, name)
            body = copy.deepcopy(dict(config))
            body.setdefault("metadata", {})["name"] = name
            if subresource == "status":
                applied = {"status": body.get("status") or {}}
                # Ownership of status fields is tracked like any other field of the subresource.
                paths = leaf_paths(applied, Kind("", "v1", "Status", "status", False))
            else:
                paths = leaf_paths(body, kind)
            if key not in self._objects:
                if subresource:
                    raise not_found(kind, name)
                self._validate(kind, body)
                self._require_namespace(kind, namespace, creating=True)
                stored = self._insert(
                    kind,
                    body,
                    namespace or "",
                    {manager: Manager("Apply", kind.api_version, _now(), set(paths))},
                )
                return stored.rendered(), True
            stored = self._existing(kind, namespace, name)
            live = stored.obj
            conflicts: list[tuple[str, Path]] = []
            for other_name, other in stored.managers.items():
                if other_name == manager:
                    continue
                for path in paths.keys() & other.paths:
                    if get_path(live, path) != paths[path]:
                        conflicts.append((other_name, path))
            if conflicts and not force:
                raise _apply_conflict(kind, name, conflicts, stored.managers)
            new = copy.deepcopy(live)
            mine = stored.managers.get(manager)
            previously = mine.paths if mine else set()
            others = set().union(*(m.paths for n, m in stored.managers.items() if n != manager))
            for path in previously - set(paths) - others:
                remove_path(new, path)
            if subresource == "status":
                new["status"] = deep_merge(new.get("status") or {}, applied["status"])
            else:
                top = {k: v for k, v in body.items() if not (k == "status" and kind.has_status)}
                top["metadata"] = {
                    k: v for k, v in body["metadata"].items() if k not in _SYSTEM_METADATA
                }
                deep_merge(new, top)
            if subresource != "status":
                self._validate(kind, new)
            owned_before = {n: set(m.paths) for n, m in stored.managers.items()}
            for other_name, other in stored.managers.items():
                if other_name != manager:
                    other.paths -= set(paths)
            entry = stored.managers.setdefault(
                manager, Manager("Apply", kind.api_version, _now(), set(), subresource)
            )
            entry.operation, entry.paths = "Apply", set(paths)
            changed = self._commit(stored, new, status_only=subresource == "status")
            owners_changed = owned_before != {n: m.paths for n, m in stored.managers.items()}
            if changed or owners_changed:
                entry.time = _now()
                if not changed:
                    # managedFields are part of the object: ownership moves bump the version.
                    stored.obj["metadata"]["resourceVersion"] = self._next_rv()
            return stored.rendered(), False

    def delete(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            stored = self._existing(kind, namespace, name)
            if kind.kind == "Namespace":
                if name in DEFAULT_NAMESPACES:
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    )
                if stored.gone_at is None:
                    stored.obj["metadata"]["deletionTimestamp"] = _now()
                    stored.obj["status"] = {"phase": "Terminating"}
                    stored.obj["metadata"]["resourceVersion"] = self._next_rv()
                    stored.gone_at = time.monotonic() + self.namespace_delete_delay
                rendered = stored.rendered()
                if self.namespace_delete_delay <= 0:
                    self._drop_namespace(name)
                return rendered
            del self._objects[self.key(kind, namespace, name)]
            return stored.rendered()

    def put_raw(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Seed an object without going through HTTP (not counted as a write)."""
        with self.lock:
            kind = find_kind(str(obj["kind"]))
            namespace = (obj.get("metadata") or {}).get("namespace")
            status = obj.get("status")
            stored = self._insert(kind, obj, namespace or "", {})
            if status is not None:
                stored.obj["status"] = copy.deepcopy(status)
            return stored.rendered()

    # -- workload status -------------------------------------------------------------------

    def set_ready(
        self,
        state: bool | str = True,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        """Set how workloads report: ``ready``, ``not-ready``, ``fail`` or ``stalled``.

        ``stalled`` leaves ``observedGeneration`` behind, as a controller that has not yet
        seen the change. ``None`` parts are wildcards; the most specific rule wins. Existing
        matching objects get their new status at once.
        """
        value = state if isinstance(state, str) else ("ready" if state else "not-ready")
        if value not in READY_STATES:
            raise ValueError(f"state must be one of {READY_STATES} or a bool, not {state!r}")
        with self.lock:
            kind_name = find_kind(kind).kind if kind else None
            self._ready_rules[(kind_name, namespace, name)] = value
            for stored in self._objects.values():
                self._simulate_status(stored, bump=True)

    def _state_for(self, stored: Stored) -> str:
        meta = stored.obj["metadata"]
        best: tuple[int, str] = (-1, "ready")
        for (kind, namespace, name), state in self._ready_rules.items():
            if kind not in (None, stored.kind.kind):
                continue
            if namespace not in (None, meta.get("namespace")) or name not in (None, meta["name"]):
                continue
            score = (kind is not None) + (namespace is not None) * 2 + (name is not None) * 4
            if score >= best[0]:
                best = (score, state)
        return best[1]

    def _simulate_status(self, stored: Stored, *, bump: bool = False) -> None:
        kind = stored.kind.kind
        if kind not in ("Deployment", "StatefulSet", "Job"):
            return
        state = self._state_for(stored)
        obj = stored.obj
        generation = int(obj["metadata"].get("generation", 1))
        previous = obj.get("status") or {}
        observed = (
            int(previous.get("observedGeneration", generation - 1))
            if state == "stalled"
            else generation
        )
        spec = obj.get("spec") or {}
        if kind == "Job":
            completions = int(spec.get("completions") or 1)
            if state == "ready":
                status: dict[str, Any] = {
                    "succeeded": completions,
                    "conditions": [{"type": "Complete", "status": "True"}],
                }
            elif state == "fail":
                status = {
                    "failed": int(spec.get("backoffLimit", 6)) + 1,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            else:
                status = {"active": 1}
        else:
            replicas = int(spec.get("replicas", 1))
            ready = replicas if state == "ready" else 0
            status = {
                "observedGeneration": observed,
                "replicas": replicas,
                "readyReplicas": ready,
                "updatedReplicas": replicas if state != "stalled" else 0,
                "availableReplicas": ready,
            }
            if kind == "StatefulSet":
                status["currentReplicas"] = replicas
                status["currentRevision"] = status["updateRevision"] = (
                    f"{obj['metadata']['name']}-1"
                )
            else:
                progressing = (
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{obj["metadata"]["name"]}" has timed out '
                        "progressing.",
                    }
                    if state == "fail"
                    else {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                    }
                )
                status["conditions"] = [
                    {
                        "type": "Available",
                        "status": "True" if state == "ready" else "False",
                        "reason": "MinimumReplicasAvailable"
                        if state == "ready"
                        else "MinimumReplicasUnavailable",
                    },
                    progressing,
                ]
        if previous != status:
            obj["status"] = status
            if bump:
                obj["metadata"]["resourceVersion"] = self._next_rv()


def _normalize(kind: Kind, obj: dict[str, Any]) -> None:
    """What the server does on every write: a Secret's ``stringData`` is folded into ``data``."""
    if kind.kind == "Secret" and isinstance(obj.get("stringData"), Mapping):
        data = obj.setdefault("data", {}) or {}
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def _apply_conflict(
    kind: Kind, name: str, conflicts: list[tuple[str, Path]], managers: Mapping[str, Manager]
) -> ApiError:
    rendered = [
        (
            f'conflict with "{owner}"'
            + (" using " + managers[owner].api_version if owner in managers else ""),
            "." + ".".join(path),
        )
        for owner, path in sorted(conflicts)
    ]
    count = len(rendered)
    lines = "\n".join(f"- {m}: {f}" for m, f in rendered)
    return ApiError(
        409,
        "Conflict",
        f"Apply failed with {count} conflict{'s' if count > 1 else ''}: "
        + (f"{rendered[0][0]}: {rendered[0][1]}" if count == 1 else "\n" + lines),
        {
            "name": name,
            "group": kind.group,
            "kind": kind.plural,
            "causes": [
                {"reason": "FieldManagerConflict", "message": m, "field": f} for m, f in rendered
            ],
        },
    )
