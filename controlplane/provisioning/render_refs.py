"""What the renderer is told about a tenant and an instance, from their database rows.

Reconciling, the fleet's upgrade preview and an instance's dry run render the same instance;
they must give the renderer the same names, or the preview would not be what gets applied.
"""

from __future__ import annotations

from controlplane.provisioning.models import Instance, Target
from controlplane.rendering.renderer import InstanceRef, TenantRef
from controlplane.rendering.target_ref import TargetRef
from controlplane.tenants.models import Tenant


def tenant_ref(tenant: Tenant) -> TenantRef:
    return TenantRef(slug=tenant.slug, name=tenant.name, nis_code=tenant.nis_code)


def instance_ref(instance: Instance) -> InstanceRef:
    return InstanceRef(
        name=instance.name,
        id=str(instance.id),
        namespace=instance.namespace,
        hostname=instance.hostname,
        credentials_rotation=instance.credentials_rotation,
        restore=(
            (str(instance.restore_from["namespace"]), instance.restore_from.get("time"))
            if instance.restore_from
            else None
        ),
    )


def target_ref(target: Target | None) -> TargetRef:
    """Capabilities and backup destination (never the credentials file) of the target."""
    if target is None:
        return TargetRef()
    return TargetRef.from_target(target.capabilities, target.config)
