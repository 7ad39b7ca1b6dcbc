"""Shipped stacks rendered as the reconciler hands them to a target, for the cluster tier."""

from __future__ import annotations

import secrets

from controlplane.catalog.models import ServiceRelease
from controlplane.provisioning.targets import Stack
from controlplane.rendering import InstanceRef, Renderer, TenantRef


def render_stack(
    renderer: Renderer, release: ServiceRelease, plan: str, tenant: TenantRef
) -> Stack:
    """One instance of ``release`` on ``plan`` for ``tenant``, named after both, default
    parameters, a fresh instance id (so reruns against a reused cluster meet no leftovers)."""
    name = f"{release.name}-{release.version.version}-{plan}".replace(".", "-")[:40].strip("-")
    instance = InstanceRef(name=name, id=f"00000000-0000-4000-8000-{secrets.token_hex(6)}")
    rendered = renderer.render(release, plan=plan, tenant=tenant, instance=instance, parameters={})
    return Stack(
        tenant=tenant.slug,
        instance=instance.name,
        instance_id=instance.id,
        namespace=rendered.namespace,
        objects=rendered.objects,
        digests=rendered.object_digests(),
        digest=rendered.digest,
    )
