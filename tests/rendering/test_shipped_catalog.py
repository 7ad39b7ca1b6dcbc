"""Every service x version x plan of the shipped catalogue renders and passes all checks."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease, canonical_json
from controlplane.rendering import Renderer
from tests.rendering.conftest import INSTANCE, SERVER_SECRET, TENANT

MATRIX = [
    pytest.param(release, plan.name, id=f"{release.name}@{release.version.version}:{plan.name}")
    for release in load_catalog().releases()
    for plan in release.plans
]
RENDERER = Renderer(server_secret=SERVER_SECRET)


@pytest.mark.skipif(not MATRIX, reason="the shipped catalogue has no services yet")
@pytest.mark.parametrize(("release", "plan"), MATRIX)
def test_renders_with_defaults(release: ServiceRelease, plan: str) -> None:
    stack = RENDERER.render(release, plan=plan, tenant=TENANT, instance=INSTANCE, parameters={})
    kinds = {obj["kind"] for obj in stack.objects}
    assert {"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"} <= kinds
    assert len(stack.objects) > 6


# What the API server lets an update change (the rest of the spec is immutable), per kind:
# a plan change or an upgrade that changes anything else fails on a real cluster half-way.
MUTABLE_SPEC = {
    "StatefulSet": {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    },
    # A bound claim may only change its requests (and its VolumeAttributesClass).
    "PersistentVolumeClaim": {"resources", "volumeAttributesClassName"},
}
SERVICES = sorted({release.name for release in load_catalog().releases()})


def _frozen(obj: dict[str, Any]) -> dict[str, Any]:
    mutable = MUTABLE_SPEC[obj["kind"]]
    return {k: v for k, v in (obj.get("spec") or {}).items() if k not in mutable}


@pytest.mark.skipif(not SERVICES, reason="the shipped catalogue has no services yet")
@pytest.mark.parametrize("service", SERVICES)
def test_plan_changes_and_upgrades_change_no_immutable_field(service: str) -> None:
    """Every version x plan of a service (with and without a storage floor) renders the same
    immutable fields: a plan change up or down and every upgrade can be applied in place."""
    frozen: dict[str, dict[str, list[str]]] = {}
    for release in load_catalog().releases():
        if release.name != service:
            continue
        for plan in release.plans:
            for floor in (None, "1Ti"):
                stack = RENDERER.render(
                    release,
                    plan=plan.name,
                    tenant=TENANT,
                    instance=INSTANCE,
                    parameters={},
                    storage_floor=floor,
                )
                where = f"{release.version.version}:{plan.name}" + (
                    f"+floor {floor}" if floor else ""
                )
                for obj in stack.objects:
                    if obj["kind"] in MUTABLE_SPEC:
                        oid = f"{obj['kind']}/{obj['metadata']['name']}"
                        variants = frozen.setdefault(oid, {})
                        variants.setdefault(canonical_json(_frozen(obj)), []).append(where)
    assert frozen, f"{service} renders no StatefulSet or PersistentVolumeClaim"
    for oid, variants in frozen.items():
        assert len(variants) == 1, (
            f"{oid} changes immutable fields between {list(variants.values())}"
        )


def test_no_shipped_template_uses_volume_claim_templates() -> None:
    """Plan-dependent volumes are standalone claims the platform can grow (one pattern)."""
    for release in load_catalog().releases():
        for name, text in release.bundle.files.items():
            assert "volumeClaimTemplates" not in text, (
                f"{release.name} {release.version.version}: {name}"
            )
