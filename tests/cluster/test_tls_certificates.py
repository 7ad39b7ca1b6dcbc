"""TLS through cert-manager on the real apiserver: every shipped stack rendered for a target
with a ClusterIssuer is accepted with its Certificates, checked against cert-manager's real
CRDs (installed by the cluster start); a wrong Certificate is refused, so the schema is live."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.kube.client import KubeClient
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.rendering import InstanceRef, Renderer, TenantRef, TlsIssuer
from tests.cluster.fixtures import Cluster

RELEASES = list(load_catalog().releases())
IDS = [f"{r.name}@{r.version.version}" for r in RELEASES]
ISSUER = TlsIssuer(name="city-platform-test-issuer")


def _render(renderer: Renderer, release: ServiceRelease, tenant: TenantRef) -> Stack:
    name = f"{release.name}-{release.version.version}".replace(".", "-")[:40].strip("-")
    instance = InstanceRef(name=name, id=f"00000000-0000-4000-8000-{secrets.token_hex(6)}")
    rendered = renderer.render(
        release,
        plan=release.plans[0].name,
        tenant=tenant,
        instance=instance,
        parameters={},
        tls=ISSUER,
    )
    return Stack(
        tenant=tenant.slug,
        instance=instance.name,
        instance_id=instance.id,
        namespace=rendered.namespace,
        objects=rendered.objects,
        digests=rendered.object_digests(),
        digest=rendered.digest,
    )


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    found = cluster.get(
        "CustomResourceDefinition",
        "certificates.cert-manager.io",
        api_version="apiextensions.k8s.io/v1",
    )
    assert found is not None, "cert-manager's CRDs are not installed (make cluster installs them)"


@pytest.fixture(scope="module")
def applied(cluster: Cluster, crds: None) -> Iterator[dict[str, tuple[Stack, Exception | None]]]:
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    target = KubernetesTarget(port, name="tls-tier", delete_timeout=180)
    renderer = Renderer(server_secret=b"tls-tier", kubernetes_version="1.33")
    tenant = TenantRef(slug=f"t{secrets.token_hex(2)}", name="TLS", nis_code="44021")
    results: dict[str, tuple[Stack, Exception | None]] = {}

    def apply(key: str, release: ServiceRelease) -> None:
        stack = _render(renderer, release, tenant)
        try:
            target.apply(stack)
            # A resync must not see the Certificates (or the TLS Ingresses) as drifted.
            drifted = target.drifted(stack)
            if drifted:
                raise AssertionError(f"drift right after apply: {sorted(drifted)}")
            results[key] = (stack, None)
        except Exception as exc:  # judged per stack below
            results[key] = (stack, exc)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(apply, IDS, RELEASES))
    yield results

    def delete(stack: Stack) -> None:
        target.delete(tenant=stack.tenant, instance=stack.instance, namespace=stack.namespace)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(delete, [s for s, _ in results.values()]))
    port.close()


@pytest.mark.parametrize("key", IDS)
def test_stack_with_certificates_is_accepted(
    applied: dict[str, tuple[Stack, Exception | None]], cluster: Cluster, key: str
) -> None:
    stack, error = applied[key]
    assert error is None, f"the apiserver refused {key}: {error}"
    rendered = [o for o in stack.objects if o["kind"] == "Certificate"]
    assert rendered, "the stack has no Ingress with a host"
    for cert in rendered:
        live = cluster.get(
            "Certificate",
            cert["metadata"]["name"],
            stack.namespace,
            api_version="cert-manager.io/v1",
        )
        assert live is not None
        assert live["spec"]["issuerRef"] == cert["spec"]["issuerRef"]
        assert live["spec"]["dnsNames"] == cert["spec"]["dnsNames"]


def test_a_wrong_certificate_is_refused_by_the_apiserver(
    cluster: Cluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    def certificate(spec: dict[str, Any]) -> str:
        path = tmp_path / f"cert-{secrets.token_hex(3)}.json"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "cert-manager.io/v1",
                    "kind": "Certificate",
                    "metadata": {"name": "wrong", "namespace": namespace},
                    "spec": spec,
                }
            )
        )
        return str(path)

    good = {"secretName": "x-tls", "dnsNames": ["a.example.org"], "issuerRef": {"name": "le"}}
    accepted = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f",
                               certificate(good), check=False)  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    for bad in (
        {**good, "dnsNames": "a.example.org"},  # wrong type
        {k: v for k, v in good.items() if k != "secretName"},  # required field missing
    ):
        refused = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f",
                                  certificate(bad), check=False)  # fmt: skip
        assert refused.returncode != 0, bad
        assert "Certificate" in refused.stderr or "invalid" in refused.stderr.lower()
