"""The soak: the whole platform under random lifecycle operations, faults and worker kills.

Bounded and loopback only. It creates a fresh PostgreSQL database ``cp_soak_<random>``
(dropped at the end), migrates it, publishes the shipped catalogue, onboards a few Flemish
municipalities (Source: Statbel, CC BY 4.0) with one tenant-admin token each, and starts:

- the fault proxy (``tests/cluster/proxy.py``) in this process, in front of the real cluster
  (``$CITY_TEST_KUBECONFIG``, else the local one of ``make cluster``, started if needed), with
  ≈10 % of all requests failing (503, 500, 429) — the only target;
- the API (``controlplane serve`` = uvicorn on 127.0.0.1, embedded worker off);
- ``workers`` reconcile worker processes (``python -m tests.soak.worker``).

For ``minutes`` the tenants create, change plan, change parameters, upgrade, roll back,
delete (retain), restore and purge instances through HTTP (and now and then restore a live
one, which must answer 409 ``instance_not_retained``), while a killer SIGKILLs a random
worker every few seconds and restarts it. Then the faults stop, the runner waits (bounded)
until every instance has converged, waits (bounded) until the namespace controller has
removed the namespaces of purged instances, takes a snapshot of the database and of the
cluster (read directly, not through the proxy) and checks the rules of
``tests/soak/invariants.py``. During the run it records the UID of every claim
(PersistentVolumeClaim) the platform applied the first time it sees it (every few operations
and before each delete, restore and purge), for the rule that no claim is lost before purge.
API answers 5xx, a dead API and a timeout are violations too.

The cluster is shared (other test sessions use it at the same time): each run's tenant slugs
end in a random suffix, the snapshot only looks at objects labelled with those tenants, and
every namespace of the run is deleted at the end.

``python -m tests.soak [--minutes N] [--seed S]`` (``make soak``) exits 1 with a report on any
violation. This module knows the API's URLs, the database tables and the platform's labels,
nothing of the reconciler's internals.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import kubernetes.config
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from controlplane import migrations
from controlplane.auth import tokens
from controlplane.auth.models import Role
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.publishing import publish_from_catalog
from controlplane.provisioning.models import (
    Instance,
    Phase,
    Revision,
    RevisionOutcome,
    Target,
    TargetKind,
    UsageEvent,
)
from controlplane.tenants.models import Tenant
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.cluster.local import LocalCluster
from tests.cluster.proxy import FaultProxy
from tests.soak.invariants import (
    ClusterObject,
    InstanceState,
    RevisionState,
    Snapshot,
    UsageState,
    Violation,
    check,
)

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get(
    "CONTROLPLANE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV
INSTANCE_LABEL = "city-platform.be/instance-id"
TENANT_LABEL = "city-platform.be/tenant"
#: The platform's field manager: objects it applied carry it in ``managedFields``.
FIELD_MANAGER = "city-platform"
DIGEST_ANNOTATION = "city-platform.be/object-digest"


@dataclass
class SoakConfig:
    minutes: float = 3.0
    seed: int = 0
    workers: int = 2
    tenants: int = 4
    #: Share of requests through the proxy that fail (split 5:3:2 over 503, 500 and 429).
    fault_rate: float = 0.10
    services: tuple[str, ...] = ("keycloak", "matomo", "open-zaak")
    max_instances_per_tenant: int = 4
    #: Operations per second over all tenants.
    rate: float = 2.0
    #: Seconds between worker kills (uniform).
    kill_every: tuple[float, float] = (6.0, 15.0)
    converge_timeout: float = 300.0
    #: How long the namespace controller may take to remove deleted instances' namespaces.
    namespace_timeout: float = 120.0
    postgres_url: str = POSTGRES_URL
    #: The cluster's admin kubeconfig; ``None``: ``$CITY_TEST_KUBECONFIG`` or the local one.
    kubeconfig: Path | None = None


@dataclass
class SoakReport:
    config: SoakConfig
    operations: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    faults_fired: int = 0
    instances: int = 0
    #: Objects the platform applied that the snapshot found in the cluster.
    objects: int = 0
    converge_seconds: float = 0.0
    #: Seconds waited for the namespace controller to remove deleted instances' namespaces.
    namespace_seconds: float = 0.0
    #: Instances retained at the end, restored during the run, and claims whose UID was
    #: tracked (rule ``claims``).
    retained: int = 0
    restored: int = 0
    claims: int = 0
    violations: list[Violation] = field(default_factory=list)
    logs: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        lines = [
            f"soak: {self.config.minutes:g} min, seed {self.config.seed}, "
            f"{self.config.workers} workers, {self.config.tenants} tenants, "
            f"fault rate {self.config.fault_rate:.0%}",
            "operations accepted: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.operations.items())) or "none"),
            "operations refused (4xx, expected): "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"),
            f"worker kills: {self.kills}; injected faults fired (proxy): {self.faults_fired}",
            f"instances: {self.instances}; cluster objects checked: {self.objects}; "
            f"converged in {self.converge_seconds:.1f} s; "
            f"deleted namespaces gone after {self.namespace_seconds:.1f} s more",
            f"retention: {self.retained} instance(s) retained at the end, {self.restored} "
            f"restored during the run; {self.claims} claim UID(s) tracked",
        ]
        if self.ok:
            lines.append("all invariants hold")
        else:
            lines.append(f"{len(self.violations)} VIOLATION(S):")
            lines += [f"  {v}" for v in self.violations[:200]]
            if self.logs is not None:
                lines.append(f"process logs kept in {self.logs}")
        return "\n".join(lines)


# -- set-up --------------------------------------------------------------------------------


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:20].strip("-")


def _municipalities(count: int, rng: random.Random, suffix: str) -> list[tuple[str, str, str]]:
    """``count`` municipalities as (slug, name, NIS code); every slug ends in ``-<suffix>``.

    The cluster is shared with other runs and test sessions: the suffix keeps this run's
    namespaces (``<slug>-<instance>``) and tenant labels its own.
    """
    if MUNICIPALITIES.is_file():
        with MUNICIPALITIES.open(encoding="utf-8") as handle:
            rows = [
                (_slug(r["name_nl"]), r["name_nl"], r["nis_code"]) for r in csv.DictReader(handle)
            ]
    else:
        rows = [(f"gemeente-{i}", f"Gemeente {i}", f"{11000 + i}") for i in range(count)]
    return [
        (f"{slug[:13].strip('-')}-{suffix}", name, nis)
        for slug, name, nis in rng.sample(rows, count)
    ]


@contextmanager
def soak_database(server_url: str) -> Iterator[str]:
    """A fresh database ``cp_soak_<random>`` on the server, dropped afterwards."""
    name = f"cp_soak_{secrets.token_hex(5)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _prepare(
    engine: Engine, kubeconfig: Path, config: SoakConfig, rng: random.Random, suffix: str
) -> dict[str, str]:
    """Migrate, publish, onboard; returns tenant slug → tenant-admin token."""
    migrations.upgrade(engine)
    tokens_by_tenant: dict[str, str] = {}
    with Session(engine) as session:
        publish_from_catalog(session, load_catalog())
        session.add(
            Target(
                name="cluster",
                kind=TargetKind.KUBERNETES,
                config={"kubeconfig": str(kubeconfig)},
                is_default=True,
            )
        )
        for slug, name, nis in _municipalities(config.tenants, rng, suffix):
            tenant = Tenant(slug=slug, name=name, nis_code=nis, max_instances=50)
            session.add(tenant)
            session.flush()
            issued = tokens.create_token(
                session, name=f"soak-{slug}", role=Role.TENANT_ADMIN, tenant_id=tenant.id
            )
            tokens_by_tenant[slug] = issued.token
        session.commit()
    return tokens_by_tenant


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    """The API and the worker processes, with their logs in one folder."""

    def __init__(self, env: dict[str, str], logs: Path, workers: int) -> None:
        self.env = env
        self.logs = logs
        self.port = _free_port()
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._started = 0

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / log_name).open("ab")
        return subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_api(self) -> None:
        args = [sys.executable, "-m", "controlplane.commands", "serve"]
        cli = Path(sys.executable).with_name("controlplane")
        if cli.exists():
            args = [str(cli), "serve"]
        self.api = self._spawn([*args, "--host", "127.0.0.1", "--port", str(self.port)], "api.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError(f"the API exited at start; see {self.logs / 'api.log'}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the API did not answer /healthz in 60 s; see {self.logs / 'api.log'}")

    def start_worker(self, index: int) -> None:
        self._started += 1
        self.workers[index] = self._spawn(
            [sys.executable, "-m", "tests.soak.worker"], f"worker-{index}-{self._started}.log"
        )

    def kill_worker(self, index: int) -> None:
        proc = self.workers[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.workers[index] = None

    def ensure_workers(self) -> None:
        for index, proc in enumerate(self.workers):
            if proc is None or proc.poll() is not None:
                self.start_worker(index)

    def stop(self) -> None:
        for proc in [self.api, *self.workers]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [self.api, *self.workers]:
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# -- the cluster ---------------------------------------------------------------------------


def cluster_kubeconfig() -> Path:
    """The admin kubeconfig: ``$CITY_TEST_KUBECONFIG``, else the local cluster (started if
    it does not run, as the cluster tier's fixtures do; a no-op when it runs)."""
    external = os.environ.get("CITY_TEST_KUBECONFIG")
    if external:
        return Path(external)
    local = LocalCluster()
    local.up()  # takes the start lock itself: one process starts it, others wait
    return local.paths.kubeconfig


@dataclass(frozen=True)
class _Kind:
    group_version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def base(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"


class ClusterReader:
    """The real cluster read directly (not through the proxy), as cluster-admin."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            str(kubeconfig)
        )
        self._kinds: list[_Kind] | None = None

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **query: str) -> Any:
        sent_method, url, headers, body, post = self.client.param_serialize(
            method,
            path,
            query_params=[(k, v) for k, v in query.items() if v],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.client.call_api(
            sent_method, url, header_params=headers, body=body, post_params=post
        )
        raw = response.read()
        if response.status >= 400:
            raise kubernetes.client.ApiException(status=response.status, reason=raw[:300])
        return json.loads(raw or b"{}")

    def kinds(self) -> list[_Kind]:
        """Every listable kind the apiserver serves, at its group's preferred version."""
        if self._kinds is None:
            versions = ["v1"] + [
                g["preferredVersion"]["groupVersion"] for g in self._call("GET", "/apis")["groups"]
            ]
            kinds = []
            for gv in versions:
                doc = self._call("GET", "/api/v1" if gv == "v1" else f"/apis/{gv}")
                for res in doc.get("resources", []):
                    if "/" not in res["name"] and "list" in res.get("verbs", []):
                        kinds.append(_Kind(gv, res["name"], res["kind"], res["namespaced"]))
            self._kinds = kinds
        return self._kinds

    def labelled(self, selector: str) -> list[tuple[_Kind, dict[str, Any]]]:
        """Every object of every kind that matches the label selector, in all namespaces."""
        out = []
        for kind in self.kinds():
            try:
                doc = self._call("GET", f"{kind.base}/{kind.plural}", labelSelector=selector)
            except kubernetes.client.ApiException as exc:
                if exc.status in (403, 404, 405, 503):  # an aggregated API that is not there
                    continue
                raise
            out += [(kind, item) for item in doc.get("items") or []]
        return out

    def claims(self, tenants: list[str]) -> list[ClusterObject]:
        """The claims the platform applied for ``tenants``, with their UIDs."""
        selector = f"{INSTANCE_LABEL},{TENANT_LABEL} in ({','.join(tenants)})"
        doc = self._call("GET", "/api/v1/persistentvolumeclaims", labelSelector=selector)
        return [
            _cluster_object("v1", "PersistentVolumeClaim", obj)
            for obj in doc.get("items") or []
            if _applied_by_platform(obj)
        ]

    def namespaces(self, selector: str = "") -> set[str]:
        doc = self._call("GET", "/api/v1/namespaces", labelSelector=selector)
        return {item["metadata"]["name"] for item in doc.get("items") or []}

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(kubernetes.client.ApiException):
            self._call("DELETE", f"/api/v1/namespaces/{name}")


def _applied_by_platform(obj: dict[str, Any]) -> bool:
    """Whether the platform's field manager applied (part of) ``obj``.

    Controllers copy labels onto what they make (a Deployment's ReplicaSets and Pods, a
    StatefulSet's claims, EndpointSlices of a Service): those carry the instance label but are
    the controllers' objects, owned and garbage-collected by them, not the platform's.
    """
    return any(
        entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
    )


def _gone_namespaces(engine: Engine) -> set[str]:
    """Namespaces of deleted (purged) instances that no live or retained instance has
    taken over."""
    with Session(engine) as session:
        rows = list(session.execute(select(Instance)).scalars())
    live = {r.namespace for r in rows if r.deleted_at is None}
    return {r.namespace for r in rows if r.deleted_at is not None} - live


def _wait_for_namespaces_to_go(engine: Engine, cluster: ClusterReader, timeout: float) -> float:
    """Wait (bounded) until no deleted instance's namespace exists; returns the seconds.

    Namespace deletion is asynchronous on a real cluster (the namespace controller empties
    the namespace, then removes it); an operator looks again a little later, so does this.
    What is still there after ``timeout`` is reported by the ``orphan`` rule.
    """
    started = time.monotonic()
    gone = _gone_namespaces(engine)
    while gone & cluster.namespaces() and time.monotonic() - started < timeout:
        time.sleep(1.0)
    return time.monotonic() - started


# -- the operations ------------------------------------------------------------------------


class Driver:
    """Random lifecycle operations of one run, through HTTP with tenant-admin tokens."""

    def __init__(
        self,
        url: str,
        tokens_by_tenant: dict[str, str],
        config: SoakConfig,
        rng: random.Random,
        cluster: ClusterReader | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.cluster = cluster
        self.steps = 0
        #: Instance id → claim object id → the UID seen first (rule ``claims``).
        self.seen_claims: dict[str, dict[str, str]] = {}
        #: Ids of the instances restored (202).
        self.restored: set[str] = set()
        self.clients = {
            slug: httpx.Client(
                base_url=f"{url}/api/v1/tenants/{slug}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            for slug, token in tokens_by_tenant.items()
        }
        catalog = load_catalog()
        self.versions = {
            s: [v.version for v in catalog.definition(s).versions] for s in config.services
        }
        self.plans = {s: [p.name for p in catalog.release(s).plans] for s in config.services}
        self.counter = 0
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.violations: list[Violation] = []

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def _call(self, op: str, client: httpx.Client, method: str, path: str, **kw: Any) -> Any:
        try:
            answer = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.violations.append(Violation("api", f"{op} {method} {path}", f"no answer: {exc}"))
            return None
        if answer.status_code >= 500:
            self.violations.append(
                Violation(
                    "api", f"{op} {method} {path}", f"{answer.status_code}: {answer.text[:300]}"
                )
            )
            return None
        if answer.status_code >= 400:
            self.rejected[f"{op} {answer.status_code}"] += 1
            return None
        if method != "GET":
            self.accepted[op] += 1
        return answer.json()

    def record_claims(self) -> None:
        """Note the UID of every claim of this run seen for the first time."""
        if self.cluster is None:
            return
        try:
            claims = self.cluster.claims(sorted(self.clients))
        except kubernetes.client.ApiException:
            return  # read directly, not through the proxy: seen again a few operations later
        for claim in claims:
            if claim.instance_id is not None and claim.uid is not None:
                seen = self.seen_claims.setdefault(claim.instance_id, {})
                seen.setdefault(claim.object_id, claim.uid)

    def _restore_live(self, client: httpx.Client, instance: dict[str, Any]) -> None:
        """Restore an instance that is not retained: must answer 409 instance_not_retained."""
        path = f"/instances/{instance['name']}/restore"
        try:
            answer = client.post(path)
        except httpx.HTTPError as exc:
            self.violations.append(Violation("api", f"restore POST {path}", f"no answer: {exc}"))
            return
        code = answer.json().get("code") if answer.status_code == 409 else None
        if code == "instance_not_retained":
            self.rejected["restore 409"] += 1
        else:
            self.violations.append(
                Violation(
                    "api",
                    f"restore POST {path}",
                    f"a live instance answered {answer.status_code} {answer.text[:300]}, "
                    "expected 409 instance_not_retained",
                )
            )

    def step(self) -> None:
        self.steps += 1
        if self.steps % 5 == 0:
            self.record_claims()
        slug = self.rng.choice(sorted(self.clients))
        client = self.clients[slug]
        page = self._call("list", client, "GET", "/instances", params={"limit": 100})
        if page is None:
            return
        items = [i for i in page["items"] if not i["deletion_requested"]]
        live = [i for i in items if i.get("purge_after") is None]
        retained = [i for i in items if i.get("purge_after") is not None]
        choices: list[tuple[str, float]] = []
        limit = self.config.max_instances_per_tenant
        if len(live) < limit and len(items) < limit + 2:
            choices.append(("create", 3.0 if len(live) < 2 else 1.5))
        if live:
            choices += [("plan", 2.0), ("parameters", 2.0), ("upgrade", 1.0)]
            choices += [("rollback", 1.0), ("delete", 1.2), ("purge", 0.3)]
            choices += [("restore-live", 0.2)]
        if retained:
            choices += [("restore", 1.2), ("purge-retained", 0.4)]
        if not choices:
            return
        op = self.rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
        if op in ("restore", "purge-retained"):
            instance = self.rng.choice(retained)
            path = f"/instances/{instance['name']}"
            self.record_claims()
            if op == "restore":
                refused = self.rejected.total()
                if self._call(op, client, "POST", f"{path}/restore") is not None:
                    self.restored.add(instance["id"])
                elif self.rejected.total() > refused:  # the list just said it is retained
                    self.violations.append(
                        Violation("retention", f"restore {path}", "a retained instance refused")
                    )
            else:
                self._call("purge", client, "DELETE", path, params={"purge": "true"})
            return
        if op == "restore-live":
            self._restore_live(client, self.rng.choice(live))
            return
        if op == "create":
            service = self.rng.choice(self.config.services)
            self.counter += 1
            body = {
                "name": f"{service[:8]}-{self.counter}",
                "service": service,
                # Half start on the older version, so that upgrades have something to do.
                "version": self.rng.choice(self.versions[service]),
                "plan": self.rng.choice(self.plans[service]),
            }
            self._call(op, client, "POST", "/instances", json=body)
            return
        instance = self.rng.choice(live)
        name, service = instance["name"], instance["service"]
        path = f"/instances/{name}"
        if op == "plan":
            others = [p for p in self.plans.get(service, []) if p != instance["plan"]]
            if others:
                self._call(op, client, "PATCH", path, json={"plan": self.rng.choice(others)})
        elif op == "parameters":
            host = f"{name}-{self.rng.randrange(10_000)}.{slug}.apps.city-platform.local"
            self._call(op, client, "PATCH", path, json={"parameters": {"hostname": host}})
        elif op == "upgrade":
            newest = self.versions.get(service, [instance["version"]])[-1]
            if newest != instance["version"]:
                self._call(op, client, "PATCH", path, json={"version": newest})
        elif op == "rollback":
            current = instance["status"]["currentRevision"]
            if current > 1:
                revision = self.rng.randrange(1, current)
                self._call(op, client, "POST", f"{path}/rollback", json={"revision": revision})
        elif op == "delete":  # retained: workloads pruned, claims, Secrets, namespace kept
            self.record_claims()
            self._call(op, client, "DELETE", path)
        elif op == "purge":
            self._call(op, client, "DELETE", path, params={"purge": "true"})


# -- convergence and the snapshot ----------------------------------------------------------


def _unconverged(engine: Engine) -> int:
    """How many instances have not reached their desired generation and phase."""
    with Session(engine) as session:
        rows = list(session.execute(select(Instance)).scalars())
    pending = 0
    for row in rows:
        done = (
            Phase.DELETED
            if row.deletion_requested
            else Phase.RETAINED
            if row.purge_after is not None
            else Phase.READY
        )
        if row.observed_generation != row.generation or row.phase != done:
            pending += 1
        elif done == Phase.RETAINED and not _applied(row):
            pending += 1  # a failed retain attempt keeps the phase; it is retried
    return pending


def _applied(row: Instance) -> bool:
    """Whether the instance's ``Applied`` condition is True (absent: True)."""
    for condition in row.conditions or []:
        if condition.get("type") == "Applied":
            return bool(condition.get("status") == "True")
    return True


def snapshot(
    engine: Engine,
    cluster: ClusterReader,
    seen_claims: dict[str, dict[str, str]] | None = None,
    restored: set[str] | None = None,
) -> Snapshot:
    """The database, and the cluster's objects labelled with the database's tenants; with
    what the driver saw during the run (claim UIDs, restored instances)."""
    snap = Snapshot(seen_claims=dict(seen_claims or {}), restored=set(restored or ()))
    with Session(engine) as session:
        tenants = {t.id: t.slug for t in session.execute(select(Tenant)).scalars()}
        for i in session.execute(select(Instance)).scalars():
            snap.instances.append(
                InstanceState(
                    id=str(i.id),
                    tenant=tenants.get(i.tenant_id, "?"),
                    name=i.name,
                    namespace=i.namespace,
                    version=i.version,
                    plan=i.plan,
                    parameters=dict(i.parameters or {}),
                    generation=i.generation,
                    observed_generation=i.observed_generation,
                    phase=str(i.phase),
                    deletion_requested=i.deletion_requested,
                    deleted=i.deleted_at is not None,
                    purge_after=i.purge_after,
                    applied=_applied(i),
                )
            )
        for r in session.execute(select(Revision)).scalars():
            snap.revisions.append(
                RevisionState(
                    instance_id=str(r.instance_id),
                    number=r.number,
                    version=r.version,
                    plan=r.plan,
                    parameters=dict(r.parameters or {}),
                    inventory=dict(r.inventory or {}),
                    applied=r.outcome == RevisionOutcome.APPLIED,
                )
            )
        for e in session.execute(select(UsageEvent)).scalars():
            snap.usage.append(
                UsageState(instance_id=str(e.instance_id), kind=str(e.kind), plan=e.plan, at=e.at)
            )
    snap.namespaces = cluster.namespaces()
    snap.objects = cluster_objects(cluster, sorted(tenants.values()))
    return snap


def cluster_objects(cluster: ClusterReader, tenants: list[str]) -> list[ClusterObject]:
    """Every object the platform applied for ``tenants``, of every kind the cluster serves."""
    selector = f"{INSTANCE_LABEL},{TENANT_LABEL} in ({','.join(tenants)})"
    return [
        _cluster_object(kind.group_version, kind.kind, obj)
        for kind, obj in cluster.labelled(selector)
        if _applied_by_platform(obj)
    ]


def _cluster_object(group_version: str, kind: str, obj: dict[str, Any]) -> ClusterObject:
    meta = obj.get("metadata") or {}
    return ClusterObject(
        object_id=f"{group_version}/{kind}/{meta['name']}",
        namespace=meta.get("namespace"),
        instance_id=(meta.get("labels") or {})[INSTANCE_LABEL],
        digest=(meta.get("annotations") or {}).get(DIGEST_ANNOTATION),
        uid=meta.get("uid"),
    )


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(Instance)).scalar_one())


# -- the run -------------------------------------------------------------------------------


def run_soak(config: SoakConfig) -> SoakReport:
    rng = random.Random(config.seed)
    report = SoakReport(config=config)
    logs = Path(tempfile.mkdtemp(prefix="cp-soak-"))
    suffix = secrets.token_hex(3)
    kubeconfig = config.kubeconfig or cluster_kubeconfig()
    cluster = ClusterReader(kubeconfig)
    with (
        soak_database(config.postgres_url) as url,
        FaultProxy(kubeconfig, seed=config.seed) as proxy,
    ):
        engine = create_engine(url, pool_pre_ping=True)
        tokens_by_tenant = _prepare(
            engine, proxy.write_kubeconfig(logs / "kubeconfig"), config, rng, suffix
        )
        env = {
            **os.environ,
            "CONTROLPLANE_DATABASE_URL": url,
            "CONTROLPLANE_SERVER_SECRET": secrets.token_hex(32),
            "CONTROLPLANE_DATA_DIR": str(logs / "data"),
            "CONTROLPLANE_EMBEDDED_WORKER": "false",
            "PYTHONPATH": str(ROOT),
        }
        processes = Processes(env, logs, config.workers)
        driver: Driver | None = None
        try:
            processes.start_api()
            processes.ensure_workers()
            share = config.fault_rate
            # Rules are tried in order; these probabilities add up to ≈ fault_rate overall.
            proxy.faults.add(503, probability=share * 0.5, message="soak: injected 503")
            proxy.faults.add(500, probability=share * 0.3, message="soak: injected 500")
            proxy.faults.add(429, probability=share * 0.2, retry_after=1)
            driver = Driver(processes.url, tokens_by_tenant, config, rng, cluster)
            end = time.monotonic() + config.minutes * 60
            next_kill = time.monotonic() + rng.uniform(*config.kill_every)
            while time.monotonic() < end:
                started = time.monotonic()
                driver.step()
                if processes.api is not None and processes.api.poll() is not None:
                    report.violations.append(Violation("api", "process", "the API process died"))
                    break
                if time.monotonic() >= next_kill:
                    victim = rng.randrange(config.workers)
                    processes.kill_worker(victim)
                    report.kills += 1
                    time.sleep(rng.uniform(0.2, 1.5))
                    processes.ensure_workers()
                    next_kill = time.monotonic() + rng.uniform(*config.kill_every)
                pause = 1.0 / config.rate - (time.monotonic() - started)
                if pause > 0:
                    time.sleep(pause)
            report.faults_fired = proxy.faults.fired
            proxy.faults.clear()
            processes.ensure_workers()
            waited = time.monotonic()
            deadline = waited + config.converge_timeout
            while (left := _unconverged(engine)) and time.monotonic() < deadline:
                time.sleep(0.5)
            report.converge_seconds = time.monotonic() - waited
            if left:
                report.violations.append(
                    Violation(
                        "converged",
                        "fleet",
                        f"{left} instance(s) not converged after {config.converge_timeout:.0f} s",
                    )
                )
            processes.stop()  # no reconcile may change anything while we look
            report.namespace_seconds = _wait_for_namespaces_to_go(
                engine, cluster, config.namespace_timeout
            )
            snap = snapshot(engine, cluster, driver.seen_claims, driver.restored)
            report.objects = len(snap.objects)
            report.retained = sum(1 for i in snap.instances if i.retained)
            report.restored = len(snap.restored)
            report.claims = sum(len(c) for c in snap.seen_claims.values())
            report.violations += check(snap)
            report.instances = _count(engine)
            if report.violations:
                _dump_database(engine, logs / "database.json")
        finally:
            if driver is not None:
                report.violations += driver.violations
                report.operations = driver.accepted
                report.rejected = driver.rejected
                driver.close()
            processes.stop()
            try:
                _delete_namespaces(engine, cluster, sorted(tokens_by_tenant))
            except Exception as exc:  # do not hide what went wrong before (a vanished cluster)
                print(f"soak: could not delete this run's namespaces: {exc!r}"[:500])
            cluster.close()
            engine.dispose()
    if report.ok:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        report.logs = logs
    return report


def _dump_database(engine: Engine, path: Path) -> None:
    """Instances (with status), revisions and usage events as JSON, for a failed run's
    report (the database itself is dropped)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    with Session(engine) as session:
        for model in (Instance, Revision, UsageEvent):
            rows = session.execute(select(model)).scalars()
            tables[model.__name__] = [row.model_dump(mode="json") for row in rows]
    path.write_text(json.dumps(tables, indent=1, default=str), encoding="utf-8")


def _delete_namespaces(engine: Engine, cluster: ClusterReader, tenants: list[str]) -> None:
    """Delete (not awaited) every namespace this run made: its instances' and any other
    namespace labelled with one of its tenants."""
    with Session(engine) as session:
        names = {r.namespace for r in session.execute(select(Instance)).scalars()}
    selector = f"{TENANT_LABEL} in ({','.join(tenants)})"
    names |= cluster.namespaces(selector)
    for name in sorted(names & cluster.namespaces()):
        cluster.delete_namespace(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "3")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "0")))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.10)
    args = parser.parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        seed=args.seed,
        workers=args.workers,
        tenants=args.tenants,
        fault_rate=args.fault_rate,
    )
    report = run_soak(config)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
