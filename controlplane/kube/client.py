"""The Kubernetes client: apply, prune, observe, readiness and namespace deletion on one cluster.

Three things are called "target" elsewhere, and this is none of them: the ``targets`` table
row is an operator's registration of a place to deploy to, ``StackTarget`` is what the
reconciler needs of one (``provisioning/targets/__init__.py``), and ``KubernetesTarget`` is
that protocol carried out on a cluster (``provisioning/targets/kubernetes.py``), through this
client.

A thin, domain-facing port over the official ``kubernetes`` client. It speaks the generic
resource API through ``ApiClient.param_serialize``/``call_api`` (so any kind the cluster serves
works, found by cached discovery), writes only by server-side apply with the platform's field
manager and ``force=true``, and retries what is worth retrying (see ``retrying.py``). Every
failure leaves as an error of ``controlplane.kube.errors`` with the client's exception chained.

Reads for drift, readiness, prune and the owner check (:meth:`KubeClient.read`) come from a
watch cache (``cache.py``: one LIST+WATCH per kind, cluster-wide, on the instance label) once
it has synced, and from the apiserver otherwise. Apply writes the objects of one apply rank
at once on a small thread pool, one rank after the other (see :meth:`KubeClient.apply`).

It must not know about tenants, instances, revisions, digests or the database: the caller
decides *what* to apply (only what changed, so a no-op reconcile makes zero writes) and
records inventories; the port only carries it out.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException

from controlplane.kube.cache import WATCH_SECONDS, KindCache, WatchCache
from controlplane.kube.errors import (
    KubeStatus,
    ObjectRejected,
    TargetForbidden,
    TargetUnavailable,
    UnknownKind,
    conflict,
    redact,
    rejected,
)
from controlplane.kube.objects import (
    INSTANCE_LABEL,
    PRUNABLE_KINDS,
    ObjectRef,
    apply_rank,
    apply_wave,
    in_write_order,
    object_id,
)
from controlplane.kube.readiness import ObjectReadiness, Readiness, evaluate, judged
from controlplane.kube.retrying import Budget, RetryPolicy
from controlplane.kube.volumes import Verdict, VolumeChange, judge, needs_classes
from controlplane.kube.volumes import check as check_volumes

logger = logging.getLogger(__name__)

_In = TypeVar("_In")
_Out = TypeVar("_Out")

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
#: Objects of one apply wave written at the same time (see ``apply``). The largest wave of
#: the catalogue (Signalen's configuration and what exposes it, 18 objects) goes out at once.
APPLY_WORKERS = 20
#: Pooled connections per host: the apply workers and the reconciler's own reads.
POOL_SIZE = APPLY_WORKERS + 4


@dataclass(frozen=True, slots=True)
class ApiResource:
    """Where a kind lives on this cluster (from discovery)."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base = f"{base}/namespaces/{namespace}"
        path = f"{base}/{self.plural}"
        return f"{path}/{name}" if name else path


@dataclass
class ApplyResult:
    """What one :meth:`KubeClient.apply` did."""

    #: Ids applied, in the order they were applied.
    applied: list[str] = field(default_factory=list)
    #: Ids left alone because ``only`` did not name them.
    skipped: list[str] = field(default_factory=list)
    #: Successful write requests.
    writes: int = 0
    #: Write requests sent, retries included.
    attempts: int = 0
    #: The live objects the server returned, by id (for resourceVersion, uid, …).
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Claims whose size this apply changed or kept (see ``controlplane.kube.volumes``).
    volumes: list[VolumeChange] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NamespaceDeletion:
    """What one look at a namespace being deleted showed."""

    gone: bool
    #: ``status.phase`` (``Terminating`` once the deletion started).
    phase: str = ""
    #: The namespace controller's messages on what is left (objects, finalizers).
    remaining: tuple[str, ...] = ()
    #: ``metadata.deletionTimestamp``: when the deletion started.
    since: str | None = None

    @classmethod
    def seen(cls, live: Mapping[str, Any]) -> NamespaceDeletion:
        status = live.get("status") or {}
        remaining = tuple(
            str(c.get("message"))
            for c in status.get("conditions") or []
            if c.get("status") == "True" and c.get("message")
        )
        return cls(
            gone=False,
            phase=str(status.get("phase") or "unknown"),
            remaining=remaining,
            since=(live.get("metadata") or {}).get("deletionTimestamp"),
        )


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    data: Any
    attempts: int


class KubeClient:
    """One Kubernetes cluster, reached through its API."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        field_manager: str = "city-platform",
        retry: RetryPolicy = RetryPolicy(),
        watch_label: str | None = INSTANCE_LABEL,
        watch_seconds: int = WATCH_SECONDS,
        apply_workers: int = APPLY_WORKERS,
    ) -> None:
        """``watch_label``: objects carrying this label are cached from one watch per kind
        (``controlplane.kube.cache``) and read from there once synced; None reads directly.
        ``apply_workers``: how many objects of one apply tier are written at once."""
        self._client = api_client
        self.field_manager = field_manager
        self.retry = retry
        self.apply_workers = apply_workers
        self._rng = random.Random(retry.seed)  # noqa: S311 - jitter, not security
        self._discovery: dict[str, dict[str, ApiResource]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._watches = (
            WatchCache(self._watch_client, label=watch_label, watch_seconds=watch_seconds)
            if watch_label
            else None
        )

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | None = None,
        context: str | None = None,
        *,
        field_manager: str = "city-platform",
        retry: RetryPolicy = RetryPolicy(),
    ) -> KubeClient:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=config
        )
        # The port's retry policy is the only one: urllib3's own retries would hide failures.
        config.retries = 0
        config.connection_pool_maxsize = POOL_SIZE
        return cls(kubernetes.client.ApiClient(config), field_manager=field_manager, retry=retry)

    @classmethod
    def in_cluster(
        cls,
        *,
        field_manager: str = "city-platform",
        retry: RetryPolicy = RetryPolicy(),
    ) -> KubeClient:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=config
        )
        config.retries = 0
        config.connection_pool_maxsize = POOL_SIZE
        return cls(kubernetes.client.ApiClient(config), field_manager=field_manager, retry=retry)

    def close(self) -> None:
        """Stop the watches and the apply workers, and close the connections."""
        if self._watches is not None:
            self._watches.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._client.close()  # type: ignore[no-untyped-call]

    def _watch_client(self) -> kubernetes.client.ApiClient:
        """A client of its own for the watches: each holds a connection for minutes."""
        config = copy.deepcopy(self._client.configuration)
        config.connection_pool_maxsize = len(PRUNABLE_KINDS) + 4
        return kubernetes.client.ApiClient(config)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.apply_workers, thread_name_prefix="kube-apply"
                )
            return self._pool

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    # -- HTTP with retries ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: str | dict[str, Any] | None = None,
        content_type: str | None = None,
        subject: str = "",
        kind: str = "",
    ) -> _Response:
        """One logical request with retries; returns 2xx and 404 answers, raises the rest.

        ``subject`` names what the request is about (an object id) for messages; ``kind``
        decides whether server messages must be redacted (Secrets).
        """
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        budget = Budget(self.retry, self._rng)
        what = subject or path
        while True:
            sent_method, url, sent_headers, sent_body, post = self._client.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            problem: str
            cause: Exception
            retry_after: float | None = None
            try:
                response = self._client.call_api(
                    sent_method,
                    url,
                    header_params=sent_headers,
                    body=sent_body,
                    post_params=post,
                    _request_timeout=self.retry.request_timeout,
                )
                raw = response.read()  # type: ignore[no-untyped-call]
            except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
                problem = f"{type(exc).__name__} talking to {self.host}"
                cause = exc
            else:
                status = response.status
                if 200 <= status < 300:
                    return _Response(status, json.loads(raw) if raw else None, budget.attempt + 1)
                if status == 404:
                    return _Response(status, None, budget.attempt + 1)
                parsed = KubeStatus.parse(status, raw, response.headers)
                message = redact(parsed.message, kind)
                cause = ApiException(status=status, reason=response.reason, body=message)
                retryable = status in (429, 409) or status >= 500
                if status == 409 and parsed.is_field_conflict:
                    raise conflict(what, parsed) from cause
                if not retryable:
                    if status in (401, 403):
                        # A ResourceQuota refusal is a 403 too, and says so: it is about the
                        # namespace's limits, not about who the platform is.
                        quota = status == 403 and "exceeded quota" in message
                        raise TargetForbidden(
                            detail=f"{what}: the target refused {method} ({status} "
                            f"{parsed.reason}): {message}",
                            hint="the namespace's ResourceQuota does not allow it; the plan "
                            "sets the quota"
                            if quota
                            else "check the platform's credentials and RBAC on this cluster",
                        ) from cause
                    raise rejected(what, kind, parsed) from cause
                problem = f"{status} {parsed.reason or response.reason}: {message}".rstrip(": ")
                retry_after = parsed.retry_after if status in (429, 503) else None
            logger.info(
                "kubernetes %s %s failed (%s), attempt %d",
                method,
                path,
                problem,
                budget.attempt + 1,
            )
            if not budget.wait(retry_after):
                raise TargetUnavailable(
                    detail=f"{what}: {method} failed after {budget.attempt} attempt(s): {problem}",
                    hint=f"check that the cluster API at {self.host} is reachable and healthy; "
                    "the reconciler will try again",
                ) from cause

    # -- discovery -----------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> ApiResource:
        """Where ``kind`` of ``api_version`` lives; discovery is cached per group version."""
        with self._lock:
            cached = self._discovery.get(api_version)
        if cached is None or kind not in cached:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            answer = self._request("GET", path, subject=f"discovery of {api_version}")
            cached = {}
            for entry in (answer.data or {}).get("resources", []) if answer.status == 200 else []:
                if "/" in entry.get("name", ""):
                    continue  # subresources such as deployments/status
                cached[entry["kind"]] = ApiResource(
                    api_version, entry["kind"], entry["name"], bool(entry.get("namespaced"))
                )
            # Unknown kinds are not cached, so a CRD installed later is found.
            with self._lock:
                self._discovery[api_version] = cached
        if kind not in cached:
            raise UnknownKind(
                detail=f"the target {self.host} does not serve {kind} in {api_version}",
                hint="install the CustomResourceDefinition that defines it, or fix apiVersion/kind",
            )
        return cached[kind]

    def _locate(
        self, obj_or_ref: Mapping[str, Any] | ObjectRef, namespace: str | None
    ) -> tuple[ApiResource, str | None]:
        if isinstance(obj_or_ref, ObjectRef):
            resource = self.resource(obj_or_ref.api_version, obj_or_ref.kind)
        else:
            resource = self.resource(str(obj_or_ref.get("apiVersion")), str(obj_or_ref.get("kind")))
        if not resource.namespaced:
            return resource, None
        if not namespace:
            ident = obj_or_ref.id if isinstance(obj_or_ref, ObjectRef) else object_id(obj_or_ref)
            raise ObjectRejected(
                detail=f"{ident} is namespaced but has no metadata.namespace",
                hint="the renderer sets the instance namespace on every namespaced object",
            )
        return resource, namespace

    # -- apply ---------------------------------------------------------------------------------

    def apply(
        self, objects: Sequence[Mapping[str, Any]], *, only: set[str] | None = None
    ) -> ApplyResult:
        """Server-side apply ``objects`` wave by wave (``apply_wave``: the apply order, with
        what exposes workloads written before them); ``only`` limits it to those ids.

        Before the first write, every PersistentVolumeClaim to apply is compared with the
        live one (:meth:`volume_changes`): a claim that would have to grow where the cluster
        cannot expand it refuses the whole apply (nothing is written), and a claim asked to
        be smaller than it is keeps its live size (volumes never shrink).
        """
        result = ApplyResult()
        ordered = in_write_order(objects)
        chosen = [o for o in ordered if only is None or object_id(o) in only]
        result.volumes = self.volume_changes(chosen)
        check_volumes(result.volumes)
        kept = {c.object_id: c.live for c in result.volumes if c.verdict == Verdict.KEEPS}
        for change in result.volumes:
            logger.info(
                "volume %s/%s %s: %s → %s (StorageClass %s)",
                change.namespace,
                change.name,
                "keeps its size" if change.verdict == Verdict.KEEPS else "grows",
                change.live,
                change.desired,
                change.storage_class,
            )
        result.skipped = [
            object_id(o) for o in ordered if only is not None and object_id(o) not in only
        ]
        # Objects of one wave do not depend on each other: they are written at once; a wave
        # starts when the one before it is written, and its first error (in write order)
        # stops the apply there.
        for _wave, tier in groupby(chosen, key=lambda o: apply_wave(str(o.get("kind")))):
            batch = [
                _with_storage(o, kept[object_id(o)]) if object_id(o) in kept else o for o in tier
            ]
            answers = self._at_once(self._apply_one, batch)
            for obj, answer in zip(batch, answers, strict=True):
                oid = object_id(obj)
                result.attempts += answer.attempts
                result.writes += 1
                result.applied.append(oid)
                result.live[oid] = answer.data
                self._remember(obj, answer.data)
        return result

    def _at_once(self, call: Callable[[_In], _Out], items: Sequence[_In]) -> list[_Out]:
        """``call`` of every item, on the worker pool together; the answers in order.

        Every call runs to its end; the first failure in item order is raised then.
        """
        if len(items) <= 1 or self.apply_workers <= 1:
            return [call(item) for item in items]
        pool = self._workers()
        futures: list[Future[_Out]] = [pool.submit(call, item) for item in items]
        wait_all(futures)
        for future in futures:
            failure = future.exception()
            if failure is not None:
                raise failure
        return [f.result() for f in futures]

    def _apply_one(self, obj: Mapping[str, Any]) -> _Response:
        """Server-side apply one object (one logical request, retried)."""
        oid = object_id(obj)
        meta = obj.get("metadata") or {}
        resource, namespace = self._locate(obj, meta.get("namespace"))
        name = str(meta.get("name") or "")
        if not name:
            raise ObjectRejected(detail=f"{oid} has no metadata.name")
        answer = self._request(
            "PATCH",
            resource.path(namespace, name),
            query=[("fieldManager", self.field_manager), ("force", "true")],
            body=json.dumps(obj),
            content_type=APPLY_CONTENT_TYPE,
            subject=oid,
            kind=resource.kind,
        )
        if answer.status == 404:
            raise ObjectRejected(
                detail=f"{oid}: namespace {namespace!r} does not exist on {self.host}",
                hint="apply the Namespace object first (it sorts first in one apply call)",
            )
        return answer

    def _remember(self, obj: Mapping[str, Any], live: Mapping[str, Any] | None) -> None:
        """Put the apply's answer into the kind's cache (when watched and newer)."""
        if live is None:
            return
        cache = self._kind_cache(str(obj.get("apiVersion")), str(obj.get("kind")), start=False)
        if cache is not None:
            cache.offer(live)

    def volume_changes(self, objects: Sequence[Mapping[str, Any]]) -> list[VolumeChange]:
        """How applying ``objects`` would change the size of existing claims (reads only).

        Reads each claim among ``objects``; the StorageClasses are listed only when one
        of them would grow. Claims that do not exist yet or keep their size are left out.
        """
        claims = [
            o
            for o in objects
            if o.get("kind") == "PersistentVolumeClaim" and o.get("apiVersion") == "v1"
        ]
        if not claims:
            return []
        wanted = [((c.get("metadata") or {}).get("namespace"), object_id(c)) for c in claims]
        live = dict(zip((oid for _ns, oid in wanted), self.get_all(wanted), strict=True))
        classes: list[dict[str, Any]] = []
        if any(needs_classes(c, live[object_id(c)]) for c in claims):
            try:
                classes = self.list_objects("storage.k8s.io/v1", "StorageClass", None)
            except UnknownKind:
                classes = []  # no StorageClass API: no class can allow expansion
        changes = (judge(c, live[object_id(c)], classes) for c in claims)
        return [c for c in changes if c is not None]

    # -- read ----------------------------------------------------------------------------------

    def get(self, namespace: str | None, oid: str) -> dict[str, Any] | None:
        """The live object for an id, or None when it does not exist."""
        ref = ObjectRef.parse(oid)
        try:
            resource, ns = self._locate(ref, namespace)
        except UnknownKind:
            return None
        answer = self._request("GET", resource.path(ns, ref.name), subject=oid, kind=ref.kind)
        return answer.data if answer.status == 200 else None

    def get_all(self, wanted: Sequence[tuple[str | None, str]]) -> list[dict[str, Any] | None]:
        """:meth:`get` of every (namespace, id), the requests sent together; in order."""
        return self._at_once(lambda where: self.get(*where), wanted)

    def read_all(self, wanted: Sequence[tuple[str | None, str]]) -> list[dict[str, Any] | None]:
        """:meth:`read` of every (namespace, id): what the cache cannot answer is read with
        the requests sent together; in order."""
        found = [self.cached(namespace, oid) for namespace, oid in wanted]
        missing = [i for i, hit in enumerate(found) if hit is None]
        for i, live in zip(missing, self.get_all([wanted[i] for i in missing]), strict=True):
            found[i] = live
        return found

    def read(self, namespace: str | None, oid: str) -> dict[str, Any] | None:
        """The live object for an id from the watch cache once it is synced, else :meth:`get`.

        The cache holds only objects carrying the watch label, so an id it does not hold is
        read directly (an unlabelled or just deleted object). Secrets come without their
        ``data`` from the cache: read their values with :meth:`get`.
        """
        hit = self.cached(namespace, oid)
        return hit if hit is not None else self.get(namespace, oid)

    def cached(self, namespace: str | None, oid: str) -> dict[str, Any] | None:
        """The object as the watch cache holds it (starting the kind's watch); None when the
        cache is not synced or does not hold it. No request once the kind is watched."""
        ref = ObjectRef.parse(oid)
        cache = self._kind_cache(ref.api_version, ref.kind)
        return cache.get(namespace, ref.name) if cache is not None else None

    def observe(
        self, namespace: str, object_ids: Sequence[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Live state of each id (None for missing ones), for drift detection."""
        return {oid: self.read(namespace, oid) for oid in object_ids}

    # -- the watch cache -----------------------------------------------------------------------

    def _kind_cache(self, api_version: str, kind: str, *, start: bool = True) -> KindCache | None:
        """The watch cache of a kind (started on first use), or None when not cached."""
        if self._watches is None:
            return None
        try:
            resource = self.resource(api_version, kind)
        except UnknownKind:
            return None
        return self._watches.kind(
            api_version, kind, path=resource.path(None), namespaced=resource.namespaced, start=start
        )

    def watch_synced(self, api_version: str, kind: str) -> bool:
        """Whether reads of ``kind`` are answered from its watch cache now."""
        cache = self._kind_cache(api_version, kind, start=False)
        return cache is not None and cache.synced

    def wait_synced(self, timeout: float = 30.0) -> bool:
        """Wait until every started watch has listed and is watching; False on timeout."""
        if self._watches is None:
            return True
        deadline = self.retry.clock() + timeout
        return all(
            cache.wait_synced(max(0.0, deadline - self.retry.clock()))
            for cache in self._watches.kinds()
        )

    def watched(self) -> list[KindCache]:
        """The kind caches started so far (for tests and figures)."""
        return self._watches.kinds() if self._watches is not None else []

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, *, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        resource = self.resource(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        path = resource.path(namespace if resource.namespaced else None)
        answer = self._request("GET", path, query=query, subject=f"list {kind}", kind=kind)
        items = (answer.data or {}).get("items", []) if answer.status == 200 else []
        return list(items)

    def readiness(self, objects: Sequence[Mapping[str, Any]]) -> Readiness:
        """Readiness of the workloads among ``objects`` (Deployment, StatefulSet, Job, and a
        CloudNativePG Cluster)."""
        verdicts: dict[str, ObjectReadiness] = {}
        for obj in objects:
            kind = str(obj.get("kind"))
            oid = object_id(obj)
            if not judged(oid):
                continue
            live = self.read((obj.get("metadata") or {}).get("namespace"), oid)
            verdicts[oid] = evaluate(oid, kind, live)
        return Readiness(verdicts)

    # -- delete --------------------------------------------------------------------------------

    def _delete(self, resource: ApiResource, namespace: str | None, name: str, oid: str) -> bool:
        answer = self._request(
            "DELETE",
            resource.path(namespace, name),
            body={"propagationPolicy": "Background"},
            content_type="application/json",
            subject=oid,
            kind=resource.kind,
        )
        return answer.status != 404

    def prune(
        self, namespace: str, *, keep: set[str], inventory: Sequence[str], instance_id: str
    ) -> list[str]:
        """Delete what the instance had (inventory or instance label) but no longer has.

        An object found by the instance label only is deleted only when this port's field
        manager applied it: controllers copy labels onto what they create (a StatefulSet's
        PersistentVolumeClaims, a CronJob's Jobs), and those are not the platform's to
        delete. Objects are compared by group, kind and name, so an API version change of a
        kind does not count as stale. The Namespace itself is never pruned (that is
        :meth:`delete_namespace`). Returns the ids actually deleted, in deletion order.
        """
        kept = {ObjectRef.parse(k).identity for k in keep}
        candidates: dict[tuple[str, str, str], ObjectRef] = {}
        for oid in inventory:
            ref = ObjectRef.parse(oid)
            if ref.kind != "Namespace":
                candidates.setdefault(ref.identity, ref)
        searched = list(PRUNABLE_KINDS)
        for oid in (*inventory, *keep):
            ref = ObjectRef.parse(oid)
            if (ref.api_version, ref.kind) not in searched and ref.kind != "Namespace":
                searched.append((ref.api_version, ref.kind))
        for api_version, kind in searched:
            try:
                resource = self.resource(api_version, kind)
            except UnknownKind:
                continue
            if not resource.namespaced:
                continue
            for item in self._labelled(api_version, kind, namespace, instance_id):
                if not self._applied_here(item):
                    # Made by a controller that copied the labels (a StatefulSet's claims
                    # from its volumeClaimTemplates, a CronJob's Jobs): not ours to delete.
                    continue
                ref = ObjectRef(api_version, kind, item["metadata"]["name"])
                candidates.setdefault(ref.identity, ref)
        stale = sorted(
            (ref for ident, ref in candidates.items() if ident not in kept),
            key=lambda r: (-apply_rank(r.kind), r.id),
        )
        deleted: list[str] = []
        for ref in stale:
            try:
                resource, ns = self._locate(ref, namespace)
            except UnknownKind:
                continue  # the kind is gone from the cluster, and so are its objects
            if self._delete(resource, ns, ref.name, ref.id):
                deleted.append(ref.id)
        return deleted

    def _labelled(
        self, api_version: str, kind: str, namespace: str, instance_id: str
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` with the instance label of ``instance_id``."""
        cache = (
            self._kind_cache(api_version, kind)
            if self._watches is not None and self._watches.label == INSTANCE_LABEL
            else None
        )
        found = cache.items(namespace, INSTANCE_LABEL, instance_id) if cache is not None else None
        if found is not None:
            return found
        selector = f"{INSTANCE_LABEL}={instance_id}"
        return self.list_objects(api_version, kind, namespace, label_selector=selector)

    def _applied_here(self, item: Mapping[str, Any]) -> bool:
        """Whether this port's field manager applied (part of) ``item``."""
        return any(
            entry.get("manager") == self.field_manager and entry.get("operation") == "Apply"
            for entry in (item.get("metadata") or {}).get("managedFields") or []
        )

    def request_namespace_deletion(self, namespace: str) -> NamespaceDeletion:
        """Delete a namespace unless its deletion already started; say what is left. No waiting.

        Level-based: call it again to see whether the namespace is gone. A namespace already
        terminating is only read (no second DELETE, so a check writes nothing).
        """
        resource = self.resource("v1", "Namespace")
        oid = f"v1/Namespace/{namespace}"
        answer = self._request("GET", resource.path(None, namespace), subject=oid)
        if answer.status == 404:
            return NamespaceDeletion(gone=True)
        live: Mapping[str, Any] = answer.data or {}
        if not (live.get("metadata") or {}).get("deletionTimestamp"):
            deleted = self._request(
                "DELETE",
                resource.path(None, namespace),
                body={"propagationPolicy": "Background"},
                content_type="application/json",
                subject=oid,
                kind=resource.kind,
            )
            if deleted.status == 404:
                return NamespaceDeletion(gone=True)
            live = deleted.data or live
        return NamespaceDeletion.seen(live)

    def delete_namespace(self, namespace: str, *, wait: bool = True, timeout: float = 120) -> None:
        """Delete a namespace (and so everything in it); with ``wait``, until it is gone."""
        resource = self.resource("v1", "Namespace")
        oid = f"v1/Namespace/{namespace}"
        self._delete(resource, None, namespace, oid)
        if not wait:
            return
        started = self.retry.clock()
        while True:
            answer = self._request("GET", resource.path(None, namespace), subject=oid)
            if answer.status == 404:
                return
            if self.retry.clock() - started >= timeout:
                phase = ((answer.data or {}).get("status") or {}).get("phase", "unknown")
                raise TargetUnavailable(
                    detail=f"namespace {namespace} still exists (phase {phase}) "
                    f"after {timeout:g} s",
                    hint=f"look for finalizers or stuck objects: kubectl get namespace {namespace} "
                    "-o yaml; the reconciler will try again",
                )
            self.retry.sleep(self.retry.poll_interval)


def _with_storage(obj: Mapping[str, Any], storage: str) -> Mapping[str, Any]:
    """The claim with its storage request set to ``storage`` (the live size it keeps)."""
    out = copy.deepcopy(dict(obj))
    out.setdefault("spec", {}).setdefault("resources", {}).setdefault("requests", {})["storage"] = (
        storage
    )
    return out
