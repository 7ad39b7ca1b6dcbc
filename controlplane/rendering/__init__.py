"""Rendering: a published service release → the Kubernetes objects of one instance.

Jinja2 sandbox → YAML → Kubernetes schema + security policy → namespace baseline.
See docs/rendering.md for the rules and docs/architecture.md for the template context.
"""

from controlplane.rendering.errors import (
    ManifestInvalid,
    ParameterInvalid,
    PolicyViolation,
    TemplateInvalid,
)
from controlplane.rendering.naming import namespace_for, object_id
from controlplane.rendering.renderer import InstanceRef, RenderedStack, Renderer, TenantRef
from controlplane.rendering.secrets import derive_secret
from controlplane.rendering.tls import TlsIssuer

__all__ = [
    "InstanceRef",
    "ManifestInvalid",
    "ParameterInvalid",
    "PolicyViolation",
    "RenderedStack",
    "Renderer",
    "TemplateInvalid",
    "TenantRef",
    "TlsIssuer",
    "derive_secret",
    "namespace_for",
    "object_id",
]
