"""A local Kubernetes control plane for the cluster tier, from upstream binaries.

``python -m tests.cluster up|down|status`` (``make cluster`` / ``make cluster-down``) starts and
stops: etcd, kube-apiserver (admission as on a managed cluster: PodSecurity, ResourceQuota,
LimitRanger, ServiceAccount, DefaultStorageClass, PersistentVolumeClaimResize, …),
kube-controller-manager (every default controller, plus the host-path provisioner so PVCs bind),
kube-scheduler, kwok (fake nodes: the real controllers create the Pods, kwok marks them
Running and Ready) and the sealed-secrets controller. Everything lives in ``.cluster/`` of the
checkout: ``bin/`` (links into the build cache, see ``build.sh``), ``pki/``, ``etcd/``, ``logs/``,
``state.json`` and ``kubeconfig`` (cluster-admin by client certificate).

Each start begins from an empty etcd, so every test session meets a clean cluster; a running
cluster is reused as it is (``up`` is a no-op then).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("CITY_CLUSTER_DIR", REPO / ".cluster"))
#: The order processes start in; they stop in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "sealed-secrets-controller",
)
SERVICE_CIDR = "10.96.0.0/16"
#: Fake nodes kwok keeps Ready; sized so quotas, not nodes, limit what tests can run: the
#: tier runs every shipped stack at once, twice over when two test files overlap (a few
#: hundred CPUs of requests on the largest plans).
NODES = ("kwok-node-0", "kwok-node-1")
NODE_CAPACITY = {"cpu": "1000", "memory": "4Ti", "pods": "5000", "ephemeral-storage": "100Ti"}
STORAGE_CLASS = "standard"
SEALED_SECRETS_NAMESPACE = "kube-system"


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says what failed and where its log is."""


@dataclass
class Paths:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd(self) -> Path:
        return self.root / "etcd"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


# -- PKI -------------------------------------------------------------------------------------


def _write_pki(pki: Path) -> None:
    """A CA, the apiserver's serving certificate, an admin client certificate, SA keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if (pki / "admin.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=3650)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def save_key(name: str, k: ec.EllipticCurvePrivateKey) -> None:
        path = pki / f"{name}.key"
        path.write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "city-platform-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    save_key("ca", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, subject: x509.Name, usage: Any, sans: list[x509.GeneralName]) -> None:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        save_key(name, k)
        (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    leaf(
        "apiserver",
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ],
    )
    leaf(
        "admin",
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "city-platform-admin"),
            ]
        ),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
    )
    save_key("sa", key())
    sa_key = serialization.load_pem_private_key((pki / "sa.key").read_bytes(), None)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _kubeconfig(paths: Paths, port: int) -> str:
    pki = paths.pki
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "city-platform-test",
                    "cluster": {
                        "server": f"https://127.0.0.1:{port}",
                        "certificate-authority": str(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki / "admin.crt"),
                        "client-key": str(pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "city-platform-test",
                    "context": {"cluster": "city-platform-test", "user": "admin"},
                }
            ],
            "current-context": "city-platform-test",
        },
        indent=2,
    )


# -- the cluster ------------------------------------------------------------------------------


class LocalCluster:
    def __init__(self, root: Path = CLUSTER_DIR) -> None:
        self.paths = Paths(root)

    # -- state
    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.paths.state.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.paths.state.write_text(json.dumps(state, indent=2))

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.paths.pki / "admin.crt"), str(self.paths.pki / "admin.key"))
        return ctx

    def api(self, path: str, *, method: str = "GET", body: Any = None, timeout: float = 5) -> Any:
        """A request to the apiserver as cluster-admin (JSON in, JSON out)."""
        port = self._state()["ports"]["apiserver"]
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout, context=self._ssl()) as resp:
            text = resp.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def answers(self) -> bool:
        """Whether the apiserver of the recorded state answers ``/readyz``."""
        if "ports" not in self._state():
            return False
        try:
            return bool(self.api("/readyz", timeout=2) == "ok")
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def running(self) -> dict[str, bool]:
        pids = self._state().get("pids", {})
        return {name: _alive(pids.get(name)) for name in COMPONENTS}

    # -- up
    def up(self) -> None:
        """Start the cluster, or reuse the running one. Safe to call from several processes."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        # One starter at a time (xdist workers, a benchmark and a test session may all ask).
        with (self.paths.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._up()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _up(self) -> None:
        started = time.monotonic()
        pids = self._state().get("pids", {})
        if _alive(pids.get("etcd")) and _alive(pids.get("kube-apiserver")):
            # Running but slow to answer (a busy machine, or it is restarting): never tear
            # down a cluster other test sessions are using just because it was slow once.
            deadline = time.monotonic() + 60
            while not self.answers() and time.monotonic() < deadline:
                time.sleep(0.5)
        if self.answers():
            # Reuse it; a helper process that died (it happens to kwok under load) comes back
            # alone, so tests of other sessions on this cluster are not disturbed.
            self._restart_stopped()
            self._install_crds()  # a cluster started before a CRD was pinned gets it now
            _say(f"already running; KUBECONFIG={self.paths.kubeconfig}")
            return
        self.down(quiet=True)
        missing = [c for c in (*COMPONENTS, "kubectl") if not (self.paths.bin / c).exists()]
        if missing:
            raise ClusterError(
                f"missing binaries in {self.paths.bin}: {', '.join(missing)}; "
                "build them with `make cluster` (tests/cluster/build.sh)"
            )
        for d in (self.paths.logs, self.paths.pki):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.paths.etcd, ignore_errors=True)
        _write_pki(self.paths.pki)
        ports = {name: _free_port() for name in ("etcd", "etcd_peer", "apiserver", "kwok")}
        state: dict[str, Any] = {"ports": ports, "pids": {}}
        self._save_state(state)
        self.paths.kubeconfig.write_text(_kubeconfig(self.paths, ports["apiserver"]))
        self.paths.kubeconfig.chmod(0o600)

        try:
            self._start_all(state, ports)
        except ClusterError:
            self.down(quiet=True)  # nothing half-started is left running
            raise
        _say(
            f"ready in {time.monotonic() - started:.1f} s; "
            f"KUBECONFIG={self.paths.kubeconfig} {self.paths.bin}/kubectl get pods -A"
        )

    def _start_all(self, state: dict[str, Any], ports: dict[str, int]) -> None:
        self._start(state, "etcd", self._etcd_args(ports))
        self._wait("etcd", lambda: _http_ok(f"http://127.0.0.1:{ports['etcd']}/health"), 30)
        self._start(state, "kube-apiserver", self._apiserver_args(ports))
        self._wait("kube-apiserver", self.answers, 90)
        self._start(state, "kube-controller-manager", self._controller_manager_args())
        self._start(state, "kube-scheduler", self._scheduler_args())
        self._start(state, "kwok", self._kwok_args(ports))
        self._seed()
        self._wait("kube-controller-manager", self._has_default_service_account, 60)
        self._wait("kwok", self._nodes_ready, 60)
        self._start_sealed_secrets(state)

    def _start(
        self, state: dict[str, Any], name: str, args: list[str], env: dict[str, str] | None = None
    ) -> None:
        log = self.paths.log(name).open("ab")
        proc = subprocess.Popen(
            [str(self.paths.bin / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives `make cluster`; stopped by `make cluster-down`
            env={**os.environ, **(env or {})},
        )
        state["pids"][name] = proc.pid
        self._save_state(state)

    def _wait(self, name: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid = self._state()["pids"].get(name)
        while time.monotonic() < deadline:
            if ready():
                return
            if pid and not _alive(pid):
                raise ClusterError(f"{name} exited at start; {self._log_note(name)}")
            time.sleep(0.2)
        raise ClusterError(
            f"{name} did not become ready within {timeout:.0f} s; {self._log_note(name)}"
        )

    def _log_note(self, name: str) -> str:
        log = self.paths.log(name)
        return f"its log is {log}; the end of it:\n{_tail(log)}"

    def _restart_stopped(self) -> None:
        state = self._state()
        for name, alive in self.running().items():
            if alive or name in ("etcd", "kube-apiserver"):
                continue
            _say(f"{name} is not running: starting it again")
            if name == "sealed-secrets-controller":
                self._start_sealed_secrets(state)
            else:
                args = {
                    "kube-controller-manager": self._controller_manager_args,
                    "kube-scheduler": self._scheduler_args,
                    "kwok": lambda: self._kwok_args(state["ports"]),
                }[name]()
                self._start(state, name, args)

    # -- component arguments
    def _etcd_args(self, ports: dict[str, int]) -> list[str]:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        return [
            "--name=city-test",
            f"--data-dir={self.paths.etcd}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=city-test={peer}",
            "--unsafe-no-fsync",  # a throw-away test store: durability is not wanted, speed is
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: dict[str, int]) -> list[str]:
        pki = self.paths.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # The admission chain of a managed cluster (the defaults, named so they are visible).
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
            "DefaultStorageClass,DefaultTolerationSeconds,PersistentVolumeClaimResize,"
            "StorageObjectInUseProtection,RuntimeClass,PodSecurity,Priority,TaintNodesByCondition,"
            "MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,"
            "ResourceQuota,NodeRestriction",
            "--allow-privileged=false",
            "--profiling=false",
            "--endpoint-reconciler-type=none",
            "--v=1",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.paths.pki
        return [
            f"--kubeconfig={self.paths.kubeconfig}",
            f"--authentication-kubeconfig={self.paths.kubeconfig}",
            f"--authorization-kubeconfig={self.paths.kubeconfig}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=false",
            "--controllers=*,-node-ipam-controller,-cloud-node-lifecycle-controller,"
            "-service-lb-controller,-node-route-controller",
            # Dynamic provisioning for PVCs without a storage driver (test clusters only).
            "--enable-hostpath-provisioner=true",
            "--pvclaimbinder-sync-period=2s",  # bind claims soon after they are provisioned
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            # Fast reactions keep the tier quick: namespaces go away and Deployments settle soon.
            "--concurrent-namespace-syncs=10",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--concurrent-statefulset-syncs=10",
            "--concurrent-gc-syncs=20",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.paths.kubeconfig}",
            f"--authentication-kubeconfig={self.paths.kubeconfig}",
            f"--authorization-kubeconfig={self.paths.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ]

    def _kwok_args(self, ports: dict[str, int]) -> list[str]:
        return [
            f"--kubeconfig={self.paths.kubeconfig}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.1/16",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            "--node-lease-duration-seconds=40",
        ]

    # -- what every fresh cluster has
    def _seed(self) -> None:
        for node in NODES:
            self._create(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node,
                        "annotations": {
                            "kwok.x-k8s.io/node": "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        "labels": {
                            "kubernetes.io/hostname": node,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                    "status": {"allocatable": NODE_CAPACITY, "capacity": NODE_CAPACITY},
                },
            )
        self._create(
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/host-path",
                "reclaimPolicy": "Delete",
                "allowVolumeExpansion": True,
                "volumeBindingMode": "Immediate",
            },
        )
        for manifest in sorted((self.paths.manifests / "sealed-secrets").glob("*.yaml")):
            self.kubectl("apply", "--server-side", "-f", str(manifest))
        self._install_crds()

    def _install_crds(self) -> None:
        """cert-manager's, CloudNativePG's and its Barman Cloud Plugin's CRDs (no controller
        runs: the apiserver validates Certificates, Clusters, ObjectStores, …), each applied
        only if missing, so calling it on a running cluster changes nothing."""
        for manifest in sorted(
            m
            for project in ("cert-manager", "cloudnative-pg", "plugin-barman-cloud")
            for m in (self.paths.manifests / project).glob("*.yaml")
        ):
            group, _, plural = manifest.stem.partition("_")  # cert-manager.io_certificates
            try:
                self.api(
                    f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}"
                )
                continue
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise ClusterError(f"reading CRD {plural}.{group}: HTTP {exc.code}") from exc
            self.kubectl("apply", "--server-side", "-f", str(manifest))

    def _create(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.api(path, method="POST", body=body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise ClusterError(
                    f"creating {body['kind']} {body['metadata']['name']}: {exc.read().decode()}"
                ) from exc

    def _has_default_service_account(self) -> bool:
        try:
            self.api("/api/v1/namespaces/default/serviceaccounts/default", timeout=2)
        except (OSError, urllib.error.URLError):
            return False
        return True

    def _nodes_ready(self) -> bool:
        try:
            nodes = self.api("/api/v1/nodes", timeout=2)["items"]
        except (OSError, urllib.error.URLError, KeyError):
            return False
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == len(NODES)

    def _start_sealed_secrets(self, state: dict[str, Any]) -> None:
        """The sealed-secrets controller, run outside the cluster with a ServiceAccount token.

        Upstream reads only the in-cluster configuration, so it gets one: the environment
        variables of a Pod and a token file, in a private mount namespace so nothing of the
        machine's own /var/run/secrets is touched.
        """
        ns = SEALED_SECRETS_NAMESPACE
        sa_dir = self.paths.root / "sealed-secrets-sa"
        sa_dir.mkdir(exist_ok=True)
        self._create(
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "sealed-secrets-controller", "namespace": ns},
            },
        )
        self._create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "sealed-secrets-controller"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "sealed-secrets-controller", "namespace": ns}
                ],
            },
        )
        token = self.api(
            f"/api/v1/namespaces/{ns}/serviceaccounts/sealed-secrets-controller/token",
            method="POST",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 7 * 86400},
            },
        )["status"]["token"]
        (sa_dir / "token").write_text(token)
        shutil.copy(self.paths.pki / "ca.crt", sa_dir / "ca.crt")
        (sa_dir / "namespace").write_text(ns)
        mount = "/var/run/secrets/kubernetes.io/serviceaccount"
        Path(mount).mkdir(parents=True, exist_ok=True)
        script = f'mount --bind "$1" {mount} && shift && exec "$@"'
        log = self.paths.log("sealed-secrets-controller").open("ab")
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                str(sa_dir),
                str(self.paths.bin / "sealed-secrets-controller"),
                "--watch-for-secrets",  # picks up sealing keys that tests add as Secrets
                "--key-renew-period=0",
                "--listen-addr=127.0.0.1:0",
                "--listen-metrics-addr=127.0.0.1:0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={
                **os.environ,
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(state["ports"]["apiserver"]),
                "POD_NAMESPACE": ns,
            },
        )
        state["pids"]["sealed-secrets-controller"] = proc.pid
        self._save_state(state)
        self._wait("sealed-secrets-controller", self._sealing_key_exists, 60)

    def _sealing_key_exists(self) -> bool:
        secrets = self.api(
            f"/api/v1/namespaces/{SEALED_SECRETS_NAMESPACE}/secrets"
            "?labelSelector=sealedsecrets.bitnami.com/sealed-secrets-key",
            timeout=2,
        )
        return bool(secrets.get("items"))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.paths.bin / "kubectl"), f"--kubeconfig={self.paths.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    # -- down
    def down(self, *, quiet: bool = False) -> None:
        pids = self._state().get("pids", {})
        stopped = []
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                stopped.append((name, pid))
        deadline = time.monotonic() + 10
        for _name, pid in stopped:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            self.paths.state.unlink()
        if not quiet:
            _say(f"stopped {len(stopped)} processes" if stopped else "not running")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by us) is not alive.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def main(argv: list[str]) -> int:
    cluster = LocalCluster()
    command = argv[0] if argv else "status"
    try:
        if command == "up":
            cluster.up()
        elif command == "down":
            cluster.down()
        elif command == "status":
            answers = cluster.answers()
            for name, alive in cluster.running().items():
                print(f"{name:28} {'running' if alive else 'stopped'}")
            print(f"{'apiserver':28} {'answers' if answers else 'does not answer'}")
            return 0 if answers else 3
        else:
            print("usage: python -m tests.cluster up|down|status", file=sys.stderr)
            return 2
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0
