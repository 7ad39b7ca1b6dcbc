"""The renderer's part of catalogue validation: render a release offline, compare renders.

``catalog.validation`` checks a catalogue but sits below the renderer, so it takes these
checks as arguments. The ``catalog validate`` command and the publishing route both build
them here, so that a catalogue that fails ``validate`` is also refused on publish.

This module must not know about the database, the API or how objects are applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.catalog.models import Plan, ServiceRelease
from controlplane.catalog.transitions import UpdateCheck
from controlplane.catalog.validation import StackCheck
from controlplane.rendering.immutability import refused_changes
from controlplane.rendering.renderer import InstanceRef, Renderer, TenantRef

#: The server secret of offline renders when CONTROLPLANE_SERVER_SECRET is unset. It is
#: public (it is right here), so what it derives must never be used as a credential.
OFFLINE_SECRET = b"offline-render"
#: Who a validation render is for: a placeholder tenant (NIS code 00000 is no municipality).
CHECK_TENANT = TenantRef(slug="check", name="Catalogue check", nis_code="00000")
#: The changes between two renders that the apiserver refuses on update.
update_check: UpdateCheck = refused_changes


def offline_instance_id(tenant: str, instance: str) -> str:
    """A stable id per tenant and instance name, so repeated offline renders are equal."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"city-platform:offline/{tenant}/{instance}"))


def stack_check(kubernetes_version: str) -> StackCheck:
    """A full render of one release x plan with the offline secret, for the check tenant.

    Raises ``InvalidInput`` for a Kubernetes version without schemas.
    """
    renderer = Renderer(server_secret=OFFLINE_SECRET, kubernetes_version=kubernetes_version)

    def check(
        release: ServiceRelease, plan: Plan, parameters: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        # The tenant slug plus a short instance name keep the namespace a valid DNS label;
        # the same instance in every render, so that renders compare object by object.
        name = release.name if len(release.name) <= 40 else "check"
        return renderer.render(
            release,
            plan=plan.name,
            tenant=CHECK_TENANT,
            instance=InstanceRef(name=name, id=offline_instance_id(CHECK_TENANT.slug, name)),
            parameters=parameters,
        ).objects

    return check
