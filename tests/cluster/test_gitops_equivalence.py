"""The GitOps target gives the cluster what the Kubernetes target gives it.

A GitOps folder is only as good as what ``kubectl apply --server-side -k`` (what Argo CD and
Flux do) makes of it, and its Secrets only as good as what the real sealed-secrets controller
opens. So, on the real cluster:

1. every folder's ``kubectl kustomize`` output is exactly what the target says it wrote;
2. the controller, given the platform's own sealing key (``ensure_keypair``) as a key Secret
   added at runtime, opens every SealedSecret of every shipped stack into a Secret with exactly
   the rendered keys, values, type, labels and annotations;
3. for the newest version's smallest plan of every service, the live objects that the GitOps
   folder produced equal those the Kubernetes target produces for the same inputs.

Why one namespace at a time rather than two tenants side by side: the namespace, labels,
hostnames and more derive from the tenant slug, so two tenants would force the comparison to
rewrite the slug everywhere — which hides any defect that involves it. With the *same*
inputs there is nothing tenant-derived to normalise: the GitOps folder is applied first, its
live objects are read once the stack is Ready, the namespace is deleted (and awaited), then the
same stack goes through the Kubernetes target into the same namespace and is read the same way.
Only what the apiserver and the controllers make differently per incarnation is ignored
(see :func:`normalised`).

Everything is applied by one module fixture so the tier takes one settling time; the tests
judge the recorded results per stack.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import difflib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity

from controlplane.catalog.loading import load_catalog, service_files
from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.versions import newest
from controlplane.kube.client import KubeClient
from controlplane.provisioning.targets import ApplyReport, Stack
from controlplane.provisioning.targets.gitops import KUSTOMIZATION, GitOpsTarget, read_header
from controlplane.provisioning.targets.kubernetes import DIGEST_ANNOTATION, KubernetesTarget
from controlplane.provisioning.targets.sealing import Sealer, ensure_keypair
from controlplane.rendering import Renderer, TenantRef
from controlplane.rendering.naming import object_id
from tests.cluster.fixtures import Cluster
from tests.cluster.stacks import render_stack

REPO = Path(__file__).resolve().parents[2]
SERVER_SECRET = b"gitops-equivalence-secret"
SETTLE_TIMEOUT = 240.0
#: kubectl's field manager for ``apply --server-side`` and the platform's own.
GITOPS_MANAGER = "kubectl"
PLATFORM_MANAGER = "city-platform"
KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"


def _smallest_plan(release: ServiceRelease) -> str:
    plan = min(release.plans, key=lambda p: parse_quantity(p.memory.limit))  # type: ignore[no-untyped-call]
    return str(plan.name)


def _cases() -> tuple[list[tuple[ServiceRelease, str]], set[str]]:
    """Every (release, plan); and the newest version's smallest plan of each service."""
    releases = load_catalog().releases()
    every = [(release, plan.name) for release in releases for plan in release.plans]
    compared = set()
    for service in {r.name for r in releases}:
        own = [r for r in releases if r.name == service]
        latest = newest(r.version.version for r in own)
        release = next(r for r in own if r.version.version == latest)
        compared.add(_key(release, _smallest_plan(release)))
    return every, compared


def _key(release: ServiceRelease, plan: str) -> str:
    return f"{release.name}@{release.version.version}:{plan}"


RELEASES, COMPARED = _cases()
KEYS = [_key(r, plan) for r, plan in RELEASES]


@dataclass
class Run:
    """One stack: its GitOps folder, what the cluster made of it, and (if compared) the
    Kubernetes target's result for the same inputs."""

    stack: Stack
    folder: Path | None = None
    report: ApplyReport | None = None
    built: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: Secret name → the Secret the sealed-secrets controller made.
    unsealed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Object id → live object, applied from the GitOps folder / through the Kubernetes target.
    via_gitops: dict[str, dict[str, Any]] = field(default_factory=dict)
    via_kubernetes: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- kubectl ---------------


def _kubectl_binary() -> str:
    local = REPO / ".cluster" / "bin" / "kubectl"
    return str(local) if local.exists() else (shutil.which("kubectl") or "kubectl")


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [_kubectl_binary(), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


# -- the platform's sealing key, given to the controller at runtime ---------------


@dataclass
class SealingKey:
    cert: Path
    key: Path
    secret_name: str


@pytest.fixture(scope="module")
def sealing_key(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SealingKey]:
    """The embedded platform's keypair, added as an active key Secret (docs/gitops.md).

    The controller runs with ``--watch-for-secrets``, so it registers the key without a
    restart; a probe SealedSecret proves it before anything depends on it.
    """
    directory = tmp_path_factory.mktemp("data") / "sealing"
    cert = ensure_keypair(directory)
    key = SealingKey(
        cert, directory / "sealing.key", f"city-platform-sealing-{secrets.token_hex(3)}"
    )
    probe_ns = f"t-gitops-probe-{secrets.token_hex(3)}"
    kubectl(
        cluster,
        "-n",
        "kube-system",
        "create",
        "secret",
        "tls",
        key.secret_name,
        f"--cert={key.cert}",
        f"--key={key.key}",
    )
    try:
        kubectl(
            cluster, "-n", "kube-system", "label", "secret", key.secret_name, f"{KEY_LABEL}=active"
        )
        kubectl(cluster, "create", "namespace", probe_ns)
        probe = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "probe", "namespace": probe_ns},
            "type": "Opaque",
            "stringData": {"probe": "opened"},
        }
        sealed = Sealer.from_pem_file(cert).seal(probe, "sha256:probe")
        kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=json.dumps(sealed))
        cluster.wait_for(
            "the sealed-secrets controller to open a SealedSecret sealed with a key Secret added "
            "at runtime (is it running with --watch-for-secrets?)",
            lambda: cluster.get("Secret", "probe", probe_ns, api_version="v1"),
            timeout=60,
        )
        yield key
    finally:
        with contextlib.suppress(AssertionError):
            kubectl(cluster, "delete", "namespace", probe_ns, "--wait=false", "--ignore-not-found")
        kubectl(
            cluster, "-n", "kube-system", "delete", "secret", key.secret_name, "--ignore-not-found"
        )


# -- reading live objects ---------------


_NAMESPACED_KINDS: list[str] = []


def _namespaced_resources(cluster: Cluster) -> str:
    if not _NAMESPACED_KINDS:
        names = kubectl(cluster, "api-resources", "--namespaced=true", "--verbs=list", "-o", "name")
        _NAMESPACED_KINDS.extend(n for n in names.split() if n)
    return ",".join(_NAMESPACED_KINDS)


def _applied_by(obj: Mapping[str, Any], manager: str) -> bool:
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") == manager and e.get("operation") == "Apply" for e in entries)


def _unsealed(obj: Mapping[str, Any]) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return obj.get("kind") == "Secret" and any(o.get("kind") == "SealedSecret" for o in owners)


def live_objects(cluster: Cluster, stack: Stack, manager: str) -> dict[str, dict[str, Any]]:
    """Every object of the namespace that ``manager`` server-side applied (any kind the
    cluster serves, not only the kinds of the stack), the Secrets the sealed-secrets
    controller made, and the Namespace itself."""
    listed = json.loads(
        kubectl(
            cluster,
            "get",
            _namespaced_resources(cluster),
            "-n",
            stack.namespace,
            "--show-managed-fields",
            "-o",
            "json",
        )
    )
    out = {object_id(o): o for o in listed["items"] if _applied_by(o, manager) or _unsealed(o)}
    namespace = json.loads(kubectl(cluster, "get", "namespace", stack.namespace, "-o", "json"))
    out[object_id(namespace)] = namespace
    return out


def normalised(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what legitimately differs between two incarnations of one input.

    Nothing else is dropped: labels, annotations, spec, data, type, finalizers, generation and
    everything the apiserver defaults are compared.
    """
    out = copy.deepcopy(dict(obj))
    # Observed state, written by controllers at their own pace.
    out.pop("status", None)
    meta = out["metadata"]
    # Identity and bookkeeping the apiserver assigns per incarnation; managedFields also
    # names the manager, which is by design `kubectl` on one side and `city-platform` on the
    # other.
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    # The Kubernetes target's drift marker; the GitOps target keeps the digest in each
    # file's header line instead (docs/gitops.md).
    annotations.pop(DIGEST_ANNOTATION, None)
    if not annotations:
        meta.pop("annotations", None)
    if _unsealed(out):
        # The controller makes its SealedSecret the owner (by uid): the GitOps mechanism.
        # Any other owner would still be compared.
        owners = [o for o in meta.get("ownerReferences", []) if o.get("kind") != "SealedSecret"]
        if owners:
            meta["ownerReferences"] = owners
        else:
            meta.pop("ownerReferences", None)
    spec = out.get("spec")
    if out["kind"] == "Service" and isinstance(spec, dict) and spec.get("clusterIP") != "None":
        # Allocated at random from the service CIDR (a headless "None" is still compared).
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if out["kind"] == "PersistentVolumeClaim" and isinstance(spec, dict):
        # The PersistentVolume the provisioner made for this incarnation (pvc-<uid>).
        spec.pop("volumeName", None)
    return out


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    left = json.dumps(a, indent=1, sort_keys=True).splitlines()
    right = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(left, right, "gitops", "kubernetes", lineterm="", n=2))


# -- the run ---------------


def _secret_names(stack: Stack) -> set[str]:
    return {o["metadata"]["name"] for o in stack.objects if o["kind"] == "Secret"}


def _settled(cluster: Cluster, target: KubernetesTarget, stack: Stack) -> bool:
    """Workloads Ready and claims Bound: the state both sides are read in."""
    readiness = target.readiness(stack)
    if readiness.failed:
        raise AssertionError(f"{stack.namespace} failed: {readiness.messages}")
    if not readiness.ready:
        return False
    claims = cluster.objects("PersistentVolumeClaim", stack.namespace, api_version="v1")
    return all(c["status"]["phase"] == "Bound" for c in claims)


def _wait_all(cluster: Cluster, what: str, pending: set[str], check: Any) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while pending:
        for key in sorted(pending):
            if check(key):
                pending.discard(key)
        if pending and time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {SETTLE_TIMEOUT:.0f} s waiting for {what}: {sorted(pending)}"
            )
        if pending:
            time.sleep(1.0)


@pytest.fixture(scope="module")
def target(cluster: Cluster) -> Iterator[KubernetesTarget]:
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield KubernetesTarget(port, name="gitops-equivalence", delete_timeout=240)
    port.close()


@pytest.fixture(scope="module")
def runs(
    cluster: Cluster,
    target: KubernetesTarget,
    sealing_key: SealingKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Run]]:
    renderer = Renderer(server_secret=SERVER_SECRET, kubernetes_version="1.33")
    # A tenant of its own per run: a rerun against a reused cluster meets no leftovers.
    tenant = TenantRef(slug=f"g{secrets.token_hex(2)}", name="GitOps", nis_code="44021")
    runs = {
        key: Run(render_stack(renderer, release, plan, tenant))
        for key, (release, plan) in zip(KEYS, RELEASES, strict=True)
    }
    gitops = GitOpsTarget(
        tmp_path_factory.mktemp("gitops"), sealer=Sealer.from_pem_file(sealing_key.cert)
    )

    def write_and_apply(run: Run) -> None:
        try:
            run.report = gitops.apply(run.stack)
            run.folder = gitops.folder(run.stack.tenant, run.stack.instance)
            run.built = list(yaml.safe_load_all(kubectl(cluster, "kustomize", str(run.folder))))
            kubectl(cluster, "apply", "--server-side", "-k", str(run.folder))
        except Exception as exc:  # judged per stack by the tests
            run.error = f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write_and_apply, runs.values()))
    applied = {k for k, r in runs.items() if r.error is None}

    def opened(key: str) -> bool:
        run = runs[key]
        found = {
            s["metadata"]["name"]: s
            for s in cluster.objects("Secret", run.stack.namespace, api_version="v1")
        }
        run.unsealed = {n: found[n] for n in _secret_names(run.stack) if n in found}
        return len(run.unsealed) == len(_secret_names(run.stack))

    try:
        _wait_all(cluster, "the controller to open every SealedSecret", set(applied), opened)
        compared = COMPARED & applied
        _wait_all(
            cluster,
            "the GitOps stacks to settle",
            set(compared),
            lambda k: _settled(cluster, target, runs[k].stack),
        )
        for key in compared:
            runs[key].via_gitops = live_objects(cluster, runs[key].stack, GITOPS_MANAGER)

        # The stacks judged on their Secrets alone are done: their namespaces go now, without
        # waiting; the compared ones must be gone before the Kubernetes target reuses them.
        for key in sorted(set(runs) - compared):
            target.port.delete_namespace(runs[key].stack.namespace, wait=False)

        def delete(run: Run) -> None:
            # The target only requests the deletion (the reconciler checks again later);
            # the Kubernetes target below must find the namespace gone, so wait here.
            target.port.delete_namespace(run.stack.namespace, wait=True, timeout=240)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(delete, [runs[key] for key in compared]))

        # The same inputs, into the same (now gone) namespaces, through the Kubernetes target.
        for key in sorted(compared):
            target.apply(runs[key].stack)
        _wait_all(
            cluster,
            "the Kubernetes target's stacks to settle",
            set(compared),
            lambda k: _settled(cluster, target, runs[k].stack),
        )
        for key in compared:
            runs[key].via_kubernetes = live_objects(cluster, runs[key].stack, PLATFORM_MANAGER)
        yield runs
    finally:

        def cleanup(run: Run) -> None:
            s = run.stack
            with contextlib.suppress(Exception):
                target.delete(tenant=s.tenant, instance=s.instance, namespace=s.namespace)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(cleanup, [runs[key] for key in sorted(COMPARED)]))
        for key in sorted(set(runs) - COMPARED):
            with contextlib.suppress(Exception):
                target.port.delete_namespace(runs[key].stack.namespace, wait=False)


def _applied(runs: dict[str, Run], key: str) -> Run:
    run = runs[key]
    if run.error is not None:
        pytest.fail(f"{key}: the GitOps folder was not written or applied: {run.error}")
    return run


# -- the tests ---------------


@pytest.mark.parametrize("key", KEYS)
def test_kustomize_builds_exactly_what_the_target_wrote(runs: dict[str, Run], key: str) -> None:
    run = _applied(runs, key)
    assert run.folder is not None
    assert run.report is not None
    assert sorted(run.report.written) == sorted(run.stack.digests)
    # What the target wrote: the files its kustomization lists, each intact and naming its
    # object; every YAML file of the folder is listed.
    kustomization: dict[str, Any] = yaml.safe_load((run.folder / KUSTOMIZATION).read_text())
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in run.folder.glob("*.yaml") if p.name != KUSTOMIZATION)
    assert sorted(listed) == on_disk
    rendered = {object_id(o): o for o in run.stack.objects}
    written: dict[str, Any] = {}
    for name in listed:
        data = (run.folder / name).read_bytes()
        header = read_header(data)
        assert header is not None, f"{name}: header missing or does not match the body"
        oid, _ = header
        body = yaml.safe_load(data)
        if oid.startswith("v1/Secret/"):
            # Sealed: the file holds the SealedSecret of the same name, never the Secret.
            assert (body["apiVersion"], body["kind"]) == ("bitnami.com/v1alpha1", "SealedSecret")
            assert body["metadata"]["name"] == rendered[oid]["metadata"]["name"]
            written[object_id(body)] = body
        else:
            assert body == rendered[oid], f"{name} is not the rendered object"
            written[oid] = body
    built = {object_id(o): o for o in run.built}
    assert sorted(built) == sorted(written)
    for oid, obj in written.items():
        assert built[oid] == obj, f"kustomize changed {oid}:\n{_diff(obj, built[oid])}"


@pytest.mark.parametrize("key", KEYS)
def test_the_controller_opens_every_sealed_secret_into_the_rendered_secret(
    runs: dict[str, Run], key: str
) -> None:
    run = _applied(runs, key)
    rendered = [o for o in run.stack.objects if o["kind"] == "Secret"]
    assert rendered, f"{key} has no Secret any more: leave it out of this test"
    for secret in rendered:
        name = secret["metadata"]["name"]
        live = run.unsealed[name]
        # What the apiserver makes of the rendered Secret: stringData merged into data.
        want = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        want |= {k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()}
        got = {k: base64.b64decode(v) for k, v in (live.get("data") or {}).items()}
        assert sorted(got) == sorted(want), f"{name}: keys differ"
        assert got == want, f"{name}: values differ"
        assert live.get("type") == secret.get("type", "Opaque")
        meta = live["metadata"]
        assert meta.get("labels") == secret["metadata"].get("labels")
        assert (meta.get("annotations") or None) == (secret["metadata"].get("annotations") or None)
        if run.via_kubernetes:
            # The Kubernetes target's plain Secret for the same inputs holds the same data.
            plain = run.via_kubernetes[object_id(secret)]
            assert plain["data"] == live["data"], f"{name}: differs from the Kubernetes target's"


@pytest.mark.parametrize("key", sorted(COMPARED))
def test_gitops_folder_and_kubernetes_target_give_the_same_objects(
    runs: dict[str, Run], key: str
) -> None:
    run = _applied(runs, key)
    assert run.via_gitops
    assert run.via_kubernetes
    via_gitops = dict(run.via_gitops)
    sealed = {
        oid: via_gitops.pop(oid)
        for oid in list(via_gitops)
        if oid.startswith("bitnami.com/v1alpha1/SealedSecret/")
    }
    # GitOps adds exactly one SealedSecret per Secret, and nothing else.
    assert {o["metadata"]["name"] for o in sealed.values()} == _secret_names(run.stack)
    assert sorted(via_gitops) == sorted(run.via_kubernetes)
    assert sorted(run.via_kubernetes) == sorted(run.stack.digests)
    differing = {
        oid: _diff(normalised(via_gitops[oid]), normalised(run.via_kubernetes[oid]))
        for oid in sorted(via_gitops)
        if normalised(via_gitops[oid]) != normalised(run.via_kubernetes[oid])
    }
    assert not differing, "\n\n".join(f"{oid}:\n{d}" for oid, d in differing.items())


def test_the_compared_stacks_cover_every_service() -> None:
    services = {r.name for r, _ in RELEASES}
    assert {key.split("@", 1)[0] for key in COMPARED} == services
    assert len(services) == len(service_files(REPO / "catalog"))
