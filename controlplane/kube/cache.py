"""A cache of the platform's live objects, fed by the cluster's own change stream.

Drift detection, readiness, prune's candidate search and the namespace owner check would
otherwise read every object of an instance, one request each, at every resync of every
instance. Like client-go's informers (and kopf's watchers), this module LISTs each kind once,
cluster-wide and label-selected on the platform's instance label, then WATCHes it from that
resourceVersion in a background daemon thread: one watch per kind serves every namespace.
A watch that ends is resumed from the last resourceVersion seen; one that answers 410 Gone
(the resourceVersion is too old) is replaced by a fresh LIST; connection failures are retried
with jittered exponential backoff, and the kind is marked unsynced meanwhile, so callers fall
back to direct reads and never judge drift or readiness from a cache that may be stale.

What is kept is trimmed so that a fleet of thousands of instances stays small in memory:
Secrets lose ``data`` and ``stringData`` (secret values never sit in this process's memory
longer than a request; ``read_secret`` reads them directly), and ``managedFields`` keep only
manager and operation (what prune needs to tell the platform's objects from a controller's).

This module must not know about tenants, instances or revisions: it caches what a label
selector selects, and answers lookups by namespace and name.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

#: Server-side duration of one watch request; it is then resumed from the last resourceVersion.
WATCH_SECONDS = 300
#: Items per page of the initial LIST.
PAGE_SIZE = 500
#: Annotations that can be large and that no reader of the cache needs.
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)

Key = tuple[str | None, str]  # (namespace, name)


def version(obj: Mapping[str, Any] | None) -> int | None:
    """The resourceVersion as a number (etcd revisions are), or None when it is not one."""
    rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return int(rv) if isinstance(rv, str) and rv.isdigit() else None


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the cache keeps of ``obj``: no secret values, managedFields reduced to owners."""
    out = {k: v for k, v in obj.items() if not (obj.get("kind") == "Secret" and k in _SECRET)}
    meta = dict(out.get("metadata") or {})
    if "managedFields" in meta:
        meta["managedFields"] = [
            {"manager": e.get("manager"), "operation": e.get("operation")}
            for e in meta.get("managedFields") or []
        ]
    annotations = meta.get("annotations")
    if annotations and any(a in annotations for a in _DROPPED_ANNOTATIONS):
        meta["annotations"] = {
            k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS
        }
    out["metadata"] = meta
    return copy.deepcopy(out)


_SECRET = frozenset({"data", "stringData"})


class _Gone(Exception):
    """The watch's resourceVersion is too old (410 Gone): LIST again."""


class _Refused(Exception):
    """The apiserver refuses to list or watch this kind (401/403/404): stop trying."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Jittered exponential backoff between failed LIST/WATCH attempts."""

    base: float = 0.2
    ceiling: float = 10.0

    def delay(self, failures: int, rng: random.Random) -> float:
        return float(rng.uniform(0.5, 1.0) * min(self.ceiling, self.base * 2 ** max(0, failures)))


class KindCache:
    """The label-selected objects of one kind, cluster-wide, kept current by one watch."""

    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        *,
        path: str,
        kind: str,
        namespaced: bool,
        label: str,
        watch_seconds: int = WATCH_SECONDS,
        backoff: Backoff = Backoff(),
    ) -> None:
        self._client = client
        self.path = path
        self.kind = kind
        self.namespaced = namespaced
        #: Only objects that carry this label are cached (and watched).
        self.label = label
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        self._lock = threading.Lock()
        #: (namespace, name) -> (resourceVersion, object or None for a deleted one).
        self._store: dict[Key, tuple[int | None, dict[str, Any] | None]] = {}
        #: The store's keys by namespace: prune asks for one namespace's objects per
        #: instance, which must not cost a scan of the whole fleet's objects.
        self._index: dict[str | None, set[Key]] = {}
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._refused = False
        self._rv = ""
        self._stream: urllib3.BaseHTTPResponse | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        #: LISTs done (the first included): relists after 410 Gone show here.
        self.lists = 0
        self._thread = threading.Thread(target=self._run, name=f"kube-watch-{kind}", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._synced.clear()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(OSError, AttributeError):  # already closed
                stream.shutdown()  # unblocks the thread reading it
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def synced(self) -> bool:
        """Whether lookups may be answered from the cache (listed, and the watch is running)."""
        return self._synced.is_set() and not self._stop.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    # -- lookups -------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The cached object (a copy), or None when not synced or not cached."""
        if not self.synced:
            return None
        with self._lock:
            entry = self._store.get((namespace if self.namespaced else None, name))
        return copy.deepcopy(entry[1]) if entry and entry[1] is not None else None

    def items(self, namespace: str | None, label: str, value: str) -> list[dict[str, Any]] | None:
        """Cached objects in ``namespace`` whose ``label`` is ``value``; None when not synced."""
        if not self.synced:
            return None
        with self._lock:
            keys = self._index.get(namespace, set()) if self.namespaced else self._store.keys()
            entries = (self._store[key][1] for key in keys)
            found = [
                obj
                for obj in entries
                if obj is not None
                and ((obj.get("metadata") or {}).get("labels") or {}).get(label) == value
            ]
        return copy.deepcopy(found)

    def offer(self, obj: Mapping[str, Any]) -> None:
        """An object this process just wrote: kept if it is newer than what is cached."""
        rv = version(obj)
        if rv is None:
            return
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if self.label not in labels:
            return  # not selected: the watch would never bring its later changes
        key = self._key(obj)
        with self._lock:
            entry = self._store.get(key)
            if entry is None or (entry[0] is not None and entry[0] < rv):
                self._put(key, (rv, slim(obj)))

    # -- the watch loop ------------------------------------------------------------------------

    def _put(self, key: Key, entry: tuple[int | None, dict[str, Any] | None]) -> None:
        """Store one entry and index its key (the caller holds the lock)."""
        self._store[key] = entry
        self._index.setdefault(key[0], set()).add(key)

    def _key(self, obj: Mapping[str, Any]) -> Key:
        meta = obj.get("metadata") or {}
        return (meta.get("namespace") if self.namespaced else None, str(meta.get("name")))

    def _run(self) -> None:
        failures = 0
        listed = False
        while not self._stop.is_set():
            try:
                if not listed:
                    self._list()
                    listed = True
                self._watch()  # returns when the server ends the watch (its timeout)
                failures = 0
            except _Gone:
                logger.info(
                    "kubernetes watch of %s: resourceVersion expired, listing again", self.kind
                )
                listed = False
                self._synced.clear()
            except _Refused as exc:
                logger.warning(
                    "kubernetes watch of %s refused (%s): reading it directly from now on",
                    self.kind,
                    exc,
                )
                self._refused = True
                self._synced.clear()
                return
            except (urllib3.exceptions.HTTPError, OSError, ValueError, ApiException) as exc:
                self._synced.clear()
                if self._stop.is_set():
                    return
                delay = self.backoff.delay(failures, self._rng)
                failures += 1
                logger.info(
                    "kubernetes watch of %s broke (%s); again in %.1f s", self.kind, exc, delay
                )
                self._stop.wait(delay)
        self._synced.clear()

    def _open(self, query: list[tuple[str, str]], read_timeout: float) -> urllib3.BaseHTTPResponse:
        method, url, headers, body, post = self._client.param_serialize(
            "GET",
            self.path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(
            method, url, header_params=headers, body=body, post_params=post,
            _request_timeout=(10.0, read_timeout),
        )  # fmt: skip
        raw: urllib3.BaseHTTPResponse = response.response
        if raw.status == 410:
            raw.release_conn()
            raise _Gone
        if raw.status in (401, 403, 404):
            raw.release_conn()
            raise _Refused(f"{raw.status} {raw.reason}")
        if raw.status != 200:
            text = raw.data[:200]
            raise urllib3.exceptions.HTTPError(f"{raw.status} {raw.reason}: {text!r}")
        return raw

    def _list(self) -> None:
        self.lists += 1
        fresh: dict[Key, tuple[int | None, dict[str, Any] | None]] = {}
        token, rv = "", ""
        while True:
            query = [("labelSelector", self.label), ("limit", str(PAGE_SIZE))]
            if token:
                query.append(("continue", token))
            raw = self._open(query, read_timeout=60.0)
            page = json.loads(raw.data)
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            for item in page.get("items") or []:
                # Items of a list carry no kind; the cache's readers expect it.
                item.setdefault("kind", self.kind)
                fresh[self._key(item)] = (version(item), slim(item))
            token = str(meta.get("continue") or "")
            if not token:
                break
        listed_at = int(rv) if rv.isdigit() else None
        with self._lock:
            # What this process wrote after the list's snapshot is newer than the list.
            for key, (old_rv, obj) in self._store.items():
                newer = old_rv is not None and listed_at is not None and old_rv > listed_at
                if obj is not None and newer:
                    fresh[key] = (old_rv, obj)
            self._store = fresh
            self._index = {}
            for key in fresh:
                self._index.setdefault(key[0], set()).add(key)
            self._rv = rv
        self._synced.set()

    def _watch(self) -> None:
        query = [
            ("watch", "true"),
            ("labelSelector", self.label),
            ("resourceVersion", self._rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.watch_seconds)),
        ]
        raw = self._open(query, read_timeout=self.watch_seconds + 30.0)
        self._stream = raw
        self._synced.set()
        try:
            for event in _lines(raw, self._stop):
                self._apply(event)
        finally:
            self._stream = None
            raw.release_conn()

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise urllib3.exceptions.HTTPError(f"watch error: {obj.get('message')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self._rv = str(rv or self._rv)
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = self._key(obj)
        number = version(obj)
        with self._lock:
            self._rv = str(rv or self._rv)
            held = self._store.get(key)
            held_rv = held[0] if held is not None else None
            if held_rv is not None and number is not None and held_rv > number:
                # This process wrote a newer version (``offer``) than the watch has reached:
                # an older one must not replace it (a Deployment's previous, Ready status).
                return
            if kind == "DELETED":
                # A tombstone: a late offer of an older version must not bring it back.
                self._put(key, (number, None))
            else:
                obj.setdefault("kind", self.kind)
                self._put(key, (number, slim(obj)))


def _lines(raw: urllib3.BaseHTTPResponse, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """The watch events of a streamed answer, one JSON document a line."""
    buffer = b""
    for chunk in raw.stream(65536, decode_content=True):
        if stop.is_set():
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


class WatchCache:
    """The per-target set of kind caches, each started on first use and stopped by ``close``."""

    def __init__(
        self,
        client_factory: Callable[[], kubernetes.client.ApiClient],
        *,
        label: str,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self._client_factory = client_factory
        self._client: kubernetes.client.ApiClient | None = None
        self.label = label
        self.watch_seconds = watch_seconds
        self._kinds: dict[tuple[str, str], KindCache] = {}
        self._lock = threading.Lock()
        self._closed = False

    def kind(
        self, api_version: str, kind: str, *, path: str, namespaced: bool, start: bool = True
    ) -> KindCache | None:
        """The cache of one kind; started now if ``start`` and not yet running."""
        with self._lock:
            found = self._kinds.get((api_version, kind))
            if found is not None or not start or self._closed:
                return found
            if self._client is None:
                self._client = self._client_factory()
            found = KindCache(
                self._client,
                path=path,
                kind=kind,
                namespaced=namespaced,
                label=self.label,
                watch_seconds=self.watch_seconds,
            )
            self._kinds[(api_version, kind)] = found
        found.start()
        return found

    def kinds(self) -> list[KindCache]:
        with self._lock:
            return list(self._kinds.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            kinds = list(self._kinds.values())
        for cache in kinds:
            cache.stop()
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
