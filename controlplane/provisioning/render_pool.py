"""Rendering in worker processes, so that one reconcile process uses every core.

Rendering and validating a stack is pure Python and holds the GIL; a worker's threads
cannot share it. A :class:`RenderPool` sends renders to child processes (a
``ProcessPoolExecutor`` with the ``forkserver`` context: ``fork`` is unsafe in a process
with threads and open database connections) while the worker writes the targets. Each
child keeps its own :class:`Renderer` per Kubernetes version and a cache of published
releases keyed by digest: a task names the release by its key, and carries the release
itself until every child has said it holds it (which child takes a task is not known in
advance; a child that lacks it anyway asks for it again). The children share the code of
the templates they compile (``SharedBytecode``): a release is compiled once, not once
per child.

A render that fails in a child (a render error, a broken pool) is simply rendered again in
the reconciling process, which raises the error there with its full detail: the pool is an
accelerator and never decides an outcome.

This module must not know about the database, the queue or the targets.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.catalog.models import ServiceRelease
from controlplane.rendering.naming import object_id
from controlplane.rendering.packed import PackedObjects
from controlplane.rendering.renderer import InstanceRef, Renderer, TenantRef, object_yaml
from controlplane.rendering.target_ref import TargetRef
from controlplane.rendering.templates import SharedBytecode
from controlplane.rendering.tls import TlsIssuer

log = logging.getLogger(__name__)

#: Release key: (service, version, digest). Published releases are immutable.
ReleaseKey = tuple[str, str, str]


@dataclass(frozen=True)
class RenderTask:
    """One render, as sent to a child (small: the release goes by key)."""

    release_key: ReleaseKey
    kubernetes_version: str
    plan: str
    tenant: TenantRef
    instance: InstanceRef
    parameters: dict[str, Any]
    storage_floor: str | None
    tls: TlsIssuer | None
    #: The published release document, only when the child lacks it.
    release: dict[str, Any] | None = None
    target: TargetRef | None = None
    #: Serialise the objects too (``Rendered.yaml``): the target writes YAML files.
    yaml: bool = False


@dataclass(frozen=True)
class Rendered:
    """What the reconciler needs of a render: objects, their digests, the stack digest."""

    namespace: str
    #: ``PackedObjects`` for a target that writes YAML (it reads only the Secrets).
    objects: Sequence[dict[str, Any]]
    digests: dict[str, str]
    digest: str
    storage: str
    #: Object id → YAML of every object but the Secrets (``Stack.yaml``), made in the child
    #: so that the worker, the busiest process of a cold fleet, does not serialise them.
    yaml: dict[str, bytes] = field(default_factory=dict)


class _Missing:
    """The child does not hold the release yet: send the task again with it."""


_MISSING = _Missing()

# -- the child's state (one per child process)
_secret: bytes = b""
_bytecode: SharedBytecode | None = None
_renderers: dict[str, Renderer] = {}
_releases: dict[ReleaseKey, ServiceRelease] = {}
#: Releases a child keeps; a fleet uses a few dozen, an upgrade run two per service.
_RELEASES_KEPT = 256


def _init_child(server_secret: bytes, bytecode_dir: str | None = None) -> None:
    global _secret, _bytecode
    _secret = server_secret
    _bytecode = SharedBytecode(bytecode_dir) if bytecode_dir else None


def _ready() -> bool:
    return True


def _render_in_child(task: RenderTask) -> tuple[int, Rendered | _Missing | None]:
    """(this child's pid, what it rendered); None when it fails (the parent renders it)."""
    return os.getpid(), _render(task)


def _render(task: RenderTask) -> Rendered | _Missing | None:
    release = _releases.get(task.release_key)
    if release is None:
        if task.release is None:
            return _MISSING
        release = ServiceRelease.model_validate(task.release)
        if len(_releases) >= _RELEASES_KEPT:
            _releases.pop(next(iter(_releases)))
        _releases[task.release_key] = release
    renderer = _renderers.get(task.kubernetes_version)
    if renderer is None:
        # Children render published releases only: their templates passed the lint already
        # (a quarter of compiling a bundle, which every child does once per release).
        renderer = Renderer(
            server_secret=_secret,
            kubernetes_version=task.kubernetes_version,
            lint_templates=False,
            bytecode=_bytecode,
        )
        _renderers[task.kubernetes_version] = renderer
    try:
        rendered = renderer.render(
            release,
            plan=task.plan,
            tenant=task.tenant,
            instance=task.instance,
            parameters=task.parameters,
            storage_floor=task.storage_floor,
            tls=task.tls,
            target=task.target,
        )
    except Exception:  # render errors are raised again, in full, by the parent's render
        return None
    if not task.yaml:
        return Rendered(
            namespace=rendered.namespace,
            objects=rendered.objects,
            digests=rendered.object_digests(),
            digest=rendered.digest,
            storage=rendered.storage,
        )
    return Rendered(
        namespace=rendered.namespace,
        objects=PackedObjects(rendered.objects, loose=_is_secret),
        digests=rendered.object_digests(),
        digest=rendered.digest,
        storage=rendered.storage,
        yaml={object_id(o): object_yaml(o) for o in rendered.objects if not _is_secret(o)},
    )


def _is_secret(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Secret"


class Pending:
    """A render under way in a child; ``result()`` waits for it (None: render it here)."""

    def __init__(self, pool: RenderPool, task: RenderTask, release: dict[str, Any]) -> None:
        self._pool = pool
        self._task = task
        self._release = release
        self._future = pool._submit(task)

    def result(self) -> Rendered | None:
        try:
            child, result = self._future.result()
            if isinstance(result, _Missing):
                # This child did not hold the release: once more, with the release.
                self._pool.count(resent=True)
                task = replace(self._task, release=self._release)
                child, result = self._pool._submit(task).result()
        except Exception:  # a broken pool: the reconciler renders in-process
            log.warning("render in a child process failed", exc_info=True)
            return None
        if child:  # 0: not rendered in a child at all
            self._pool.holds(child, self._task.release_key)
        if not isinstance(result, Rendered):
            return None
        self._pool.count()
        return result


class RenderPool:
    """Child processes that render; ``submit`` starts a render and returns its handle."""

    def __init__(self, processes: int, *, server_secret: bytes) -> None:
        self.processes = processes
        #: Renders done in the children and used (the rest were rendered in-process).
        self.rendered = 0
        #: Renders sent again because the child that took them lacked the release.
        self.resent = 0
        self._count_lock = threading.Lock()
        #: Release key → the children (pids) that said they hold it.
        self._holders: dict[ReleaseKey, set[int]] = {}
        #: Compiled templates, shared by the children (private: mkdtemp makes it 0700).
        #: Without a writable temporary folder, each child compiles its own.
        self._bytecode_dir: str | None = None
        with contextlib.suppress(OSError):
            self._bytecode_dir = tempfile.mkdtemp(prefix="city-platform-templates-")
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_child,
            initargs=(server_secret, self._bytecode_dir),
        )

    def submit(self, task: RenderTask, release: dict[str, Any]) -> Pending:
        """Start rendering ``task`` in a child (``release``: the document, sent if needed).

        A batch's renders are all submitted before the first result is back, so the release
        goes along until every child holds it: asking for it after the fact would send each
        render twice, one after the other (measured: 292 extra renders in a cold fleet).
        """
        if len(self._holders.get(task.release_key, ())) < self.processes:
            task = replace(task, release=release)
        return Pending(self, task, release)

    def holds(self, child: int, key: ReleaseKey) -> None:
        with self._count_lock:
            self._holders.setdefault(key, set()).add(child)

    def _submit(self, task: RenderTask) -> Future[tuple[int, Rendered | _Missing | None]]:
        try:
            return self._executor.submit(_render_in_child, task)
        except RuntimeError:  # shut down or broken: rendered in-process
            failed: Future[tuple[int, Rendered | _Missing | None]] = Future()
            failed.set_result((0, None))
            return failed

    def warm(self) -> None:
        """Start every child now (imports included) rather than at the first batch."""
        for future in [self._executor.submit(_ready) for _ in range(self.processes)]:
            future.result()

    def count(self, *, resent: bool = False) -> None:
        with self._count_lock:
            if resent:
                self.resent += 1
            else:
                self.rendered += 1

    def close(self) -> None:
        """Stop the children (idempotent); renders not started are dropped."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._bytecode_dir is not None:
            shutil.rmtree(self._bytecode_dir, ignore_errors=True)
