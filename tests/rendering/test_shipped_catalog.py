"""Every service x version x plan of the shipped catalogue renders and passes all checks."""

from __future__ import annotations

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
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
