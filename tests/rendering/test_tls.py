"""TLS through cert-manager: a target's ClusterIssuer gives every Ingress spec.tls and a
Certificate, validated against cert-manager's CRD schema; without one nothing changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.rendering import ManifestInvalid, Renderer, TlsIssuer
from controlplane.rendering.schemas import KubernetesSchemas
from tests.rendering.conftest import INSTANCE, SERVER_SECRET, TENANT, RenderFn

ISSUER = TlsIssuer(name="letsencrypt-prod")
# The digest of the fixture webapp 1.0.0 (plan small) as rendered before TLS existed
# (computed from the committed renderer; re-recorded when pod templates got the
# config digest of controlplane.rendering.rollout): an issuer-less render must not move it.
WEBAPP_DIGEST_BEFORE_TLS = "sha256:ebeaebf2a4ff7033bd75c711742ba371d69a24e1d5d15501a0214aee46b9ffa4"


def _of(objects: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_without_an_issuer_the_render_and_its_digest_are_unchanged(
    renderer: Renderer, release: ServiceRelease, render: RenderFn
) -> None:
    plain = render()
    assert plain.digest == WEBAPP_DIGEST_BEFORE_TLS
    explicit = renderer.render(
        release, plan="small", tenant=TENANT, instance=INSTANCE, parameters={}, tls=None
    )
    assert explicit.digest == plain.digest
    assert not _of(plain.objects, "Certificate")


def test_an_issuer_adds_tls_and_one_labelled_certificate_per_ingress(
    renderer: Renderer, release: ServiceRelease, render: RenderFn
) -> None:
    plain = render()
    stack = renderer.render(
        release, plan="small", tenant=TENANT, instance=INSTANCE, parameters={}, tls=ISSUER
    )
    assert stack.digest != plain.digest
    ingresses = _of(stack.objects, "Ingress")
    certificates = _of(stack.objects, "Certificate")
    assert ingresses
    assert len(certificates) == len(ingresses)
    labels = _of(stack.objects, "ResourceQuota")[0]["metadata"]["labels"]
    for ingress, cert in zip(ingresses, certificates, strict=True):
        name = ingress["metadata"]["name"]
        hosts = [r["host"] for r in ingress["spec"]["rules"]]
        assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": f"{name}-tls"}]
        assert cert["apiVersion"] == "cert-manager.io/v1"
        assert cert["metadata"]["name"] == f"{name}-tls"
        assert cert["metadata"]["namespace"] == stack.namespace
        assert cert["metadata"]["labels"] == labels
        assert cert["spec"] == {
            "secretName": f"{name}-tls",
            "dnsNames": hosts,
            "issuerRef": {
                "name": "letsencrypt-prod",
                "kind": "ClusterIssuer",
                "group": "cert-manager.io",
            },
        }
    # The same inputs render the same stack.
    again = renderer.render(
        release, plan="small", tenant=TENANT, instance=INSTANCE, parameters={}, tls=ISSUER
    )
    assert again.digest == stack.digest


@pytest.mark.parametrize(
    "release",
    [pytest.param(r, id=f"{r.name}@{r.version.version}") for r in load_catalog().releases()],
)
def test_every_shipped_release_renders_with_tls(release: ServiceRelease) -> None:
    renderer = Renderer(server_secret=SERVER_SECRET)
    plan = release.plans[0].name
    stack = renderer.render(
        release, plan=plan, tenant=TENANT, instance=INSTANCE, parameters={}, tls=ISSUER
    )
    assert len(_of(stack.objects, "Certificate")) == len(_of(stack.objects, "Ingress"))


def test_certificates_are_checked_against_the_crd_schema() -> None:
    schemas = KubernetesSchemas("1.33")
    good = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web-tls", "namespace": "x"},
        "spec": {
            "secretName": "web-tls",
            "dnsNames": ["a.example.org"],
            "issuerRef": {"name": "le", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    }
    assert schemas.validate(good, "Certificate/web-tls") == []
    missing = copy.deepcopy(good)
    del missing["spec"]["secretName"]
    unknown = copy.deepcopy(good)
    unknown["spec"]["issuerRef"]["namespace"] = "nope"
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["dnsNames"] = "a.example.org"
    for bad in (missing, unknown, wrong_type):
        assert schemas.validate(bad, "Certificate/web-tls"), bad
    assert schemas.validate({**good, "apiVersion": "cert-manager.io/v2"}, "Certificate/x")


def test_a_template_certificate_that_breaks_the_crd_is_refused(
    renderer: Renderer, release: ServiceRelease
) -> None:
    from tests.rendering.conftest import with_files

    broken = with_files(
        release,
        **{
            "99-cert.yaml.j2": "apiVersion: cert-manager.io/v1\nkind: Certificate\n"
            "metadata:\n  name: extra\nspec:\n  secretName: extra\n  dnsNames: nope\n"
        },
    )
    with pytest.raises(ManifestInvalid) as caught:
        renderer.render(broken, plan="small", tenant=TENANT, instance=INSTANCE, parameters={})
    assert any("Certificate/extra" in e.location for e in caught.value.errors)
