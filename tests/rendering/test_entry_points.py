"""Every entry point of the shipped catalogue is served by an Ingress of its rendered stack.

The catalogue declares where people reach an instance (``entry_points``); the API and
``cityctl`` print them as URLs. A URL that no Ingress routes (a wrong host prefix or a path
outside every rule) would be a promise the stack does not keep, so for every service x
version, each entry point's host (prefix + the instance's host name) and path must match a
rule of some Ingress, with a TLS certificate for that host (the URLs are ``https://``).
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.rendering import Renderer
from tests.rendering.conftest import INSTANCE, SERVER_SECRET, TENANT

HOSTNAME = "portal.gent.example.be"
RELEASES = [
    pytest.param(release, id=f"{release.name}@{release.version.version}")
    for release in load_catalog().releases()
]
RENDERER = Renderer(server_secret=SERVER_SECRET)


def _path_matches(rule_path: str, path_type: str, path: str) -> bool:
    """Kubernetes Ingress matching: Exact, or Prefix by whole path elements."""
    if path_type == "Exact":
        return path == rule_path
    prefix = rule_path.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def _routed(ingresses: list[dict[str, Any]], host: str, path: str) -> bool:
    for ingress in ingresses:
        spec = ingress["spec"]
        tls_hosts = {h for t in spec.get("tls", []) for h in t.get("hosts", [])}
        for rule in spec.get("rules", []):
            if rule.get("host") != host or host not in tls_hosts:
                continue
            for p in rule.get("http", {}).get("paths", []):
                if _path_matches(p["path"], p.get("pathType", "Prefix"), path):
                    return True
    return False


@pytest.mark.parametrize("release", RELEASES)
def test_every_entry_point_is_routed_by_an_ingress(release: ServiceRelease) -> None:
    assert release.entry_points, f"{release.name} declares no entry points"
    names = [e.name for e in release.entry_points]
    assert len(names) == len(set(names)), names
    stack = RENDERER.render(
        release,
        plan=release.plans[0].name,
        tenant=TENANT,
        instance=INSTANCE,
        parameters={"hostname": HOSTNAME},
    )
    ingresses = [o for o in stack.objects if o["kind"] == "Ingress"]
    for entry in release.entry_points:
        host = entry.host_prefix + HOSTNAME
        assert _routed(ingresses, host, entry.path), (
            f"{release.name} {release.version.version}: {entry.name} "
            f"{entry.url(HOSTNAME)} is not served by any Ingress"
        )


def test_an_unrouted_entry_point_is_caught() -> None:
    """The check itself refuses a host prefix no Ingress serves."""
    release = next(r for r in load_catalog().releases() if r.name == "keycloak")
    stack = RENDERER.render(
        release,
        plan=release.plans[0].name,
        tenant=TENANT,
        instance=INSTANCE,
        parameters={"hostname": HOSTNAME},
    )
    ingresses = [o for o in stack.objects if o["kind"] == "Ingress"]
    assert _routed(ingresses, HOSTNAME, "/admin/")
    assert not _routed(ingresses, "api." + HOSTNAME, "/admin/")
    assert _path_matches("/api", "Prefix", "/api/v1")
    assert not _path_matches("/api", "Prefix", "/apiv1")
