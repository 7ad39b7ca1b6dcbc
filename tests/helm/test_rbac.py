"""The worker's ClusterRole grants exactly the kinds the shipped catalogue renders.

The kinds come from rendering every service x version x plan with the real renderer;
if the renderer cannot run (while it is being written), from the ``kind:`` lines of the
templates plus the namespace baseline the renderer adds. Each test names its source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helm.conftest import NAMESPACE, SCENARIOS, render

ROOT = Path(__file__).resolve().parents[2]
#: What the renderer puts in front of every stack (docs/architecture.md).
BASELINE = {
    ("", "Namespace"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("networking.k8s.io", "NetworkPolicy"),
}
#: Verbs server-side apply, prune, readiness and namespace deletion need, and no more.
ALLOWED_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
#: What the worker reads but never writes: StorageClasses (may a claim grow?).
READ_ONLY = {("storage.k8s.io", "storageclasses")}
READ_VERBS = {"get", "list", "watch"}

pytestmark = pytest.mark.slow


def resource_of(kind: str) -> str:
    """Kubernetes' default kind → resource rule (apimachinery's UnsafeGuessKindToResource)."""
    lowered = kind.lower()
    if lowered.endswith("s"):
        return lowered + "es"
    if lowered.endswith("y"):
        return lowered[:-1] + "ies"
    return lowered + "s"


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def rendered_kinds() -> tuple[set[tuple[str, str]], str]:
    """(group, kind) of every object the catalogue renders, and how that was found."""
    try:
        from controlplane.catalog.loading import load_catalog
        from controlplane.rendering import InstanceRef, Renderer, TenantRef

        renderer = Renderer(server_secret=b"x")
        kinds: set[tuple[str, str]] = set()
        for release in load_catalog().releases():
            for plan in release.plans:
                stack = renderer.render(
                    release,
                    plan=plan.name,
                    tenant=TenantRef("gent", "Gent", "44021"),
                    instance=InstanceRef("demo", "00000000-0000-0000-0000-000000000001"),
                    parameters={},
                )
                kinds |= {(group_of(o["apiVersion"]), o["kind"]) for o in stack.objects}
        if kinds:
            return kinds, "rendered every service x version x plan with controlplane.rendering"
    except Exception as exc:  # the fallback below says so in the test's output
        reason = f"renderer unusable ({type(exc).__name__}: {exc})"
    else:
        reason = "renderer rendered nothing"
    scanned = set(BASELINE)
    api_version = ""
    for path in sorted((ROOT / "templates").rglob("*.yaml*")):
        for line in path.read_text().splitlines():
            if m := re.match(r"^apiVersion:\s*[\"']?([\w./-]+)", line):
                api_version = m.group(1)
            elif m := re.match(r"^kind:\s*[\"']?(\w+)", line):
                scanned.add((group_of(api_version), m.group(1)))
    return scanned, f"scanned the templates' kind: lines ({reason})"


def test_cluster_role_grants_exactly_the_rendered_kinds() -> None:
    kinds, source = rendered_kinds()
    print(f"catalogue kinds: {source}")
    assert len(kinds) > len(BASELINE), f"the catalogue renders nothing ({source})"
    got = render(SCENARIOS["default"])
    (role,) = got.of_kind("ClusterRole")
    granted: set[tuple[str, str]] = set()
    read: set[tuple[str, str]] = set()
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert set(rule["verbs"]) <= ALLOWED_VERBS, rule
        assert "resourceNames" not in rule, rule
        assert "nonResourceURLs" not in rule, rule
        resources = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
        if resources <= READ_ONLY:
            assert set(rule["verbs"]) <= READ_VERBS, rule
            read |= resources
        else:
            granted |= resources
    assert read == READ_ONLY
    needed = {(group, resource_of(kind)) for group, kind in kinds}
    assert granted - needed == set(), f"granted but never rendered ({source})"
    assert needed - granted == set(), f"rendered but not granted ({source})"


def test_binding_names_the_pods_service_account() -> None:
    got = render(SCENARIOS["postgresql-3-replicas"])
    (binding,) = got.of_kind("ClusterRoleBinding")
    (role,) = got.of_kind("ClusterRole")
    (account,) = got.of_kind("ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": NAMESPACE,
        }
    ]
    worker = got.one("Deployment", "demo-worker")["spec"]["template"]["spec"]
    assert worker["serviceAccountName"] == account["metadata"]["name"]
