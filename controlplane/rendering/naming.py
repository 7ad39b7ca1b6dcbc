"""Names and labels the platform puts on what it renders.

The namespace of an instance, the identity of an object inside it and the labels that
tie every object to its tenant, instance, service and plan are contracts with the
reconciler (prune by label, inventory by object id) and with the GitOps layout, so they
live in one place.

This module must not know about templates, YAML or Kubernetes schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controlplane.errors import ErrorItem, InvalidInput
from controlplane.tenants.names import (
    NAMESPACE_MAX,
    NAMESPACE_SEPARATOR,
    PLATFORM_DOMAIN,
    RESERVED_PREFIXES,
    RESERVED_SLUGS,
    default_hostname,
    hostname_problem,
    is_dns_label,
    name_problem,
    reserved_slug,
    within,
)

MANAGED_BY = "city-platform"
LABEL_PREFIX = "city-platform.be"
#: Pod template annotation with which a stack declares that a pod needs its token.
NEEDS_TOKEN_ANNOTATION = f"{LABEL_PREFIX}/needs-service-account-token"

#: A DNS label (RFC 1123), full-matched: lowercase letters, digits and '-', alnum ends.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]")

__all__ = [
    "NAMESPACE_MAX",
    "NAMESPACE_SEPARATOR",
    "PLATFORM_DOMAIN",
    "RESERVED_PREFIXES",
    "RESERVED_SLUGS",
    "default_hostname",
    "hostname_problem",
    "is_dns_label",
    "name_problem",
    "namespace_for",
    "reserved_slug",
    "within",
]


def namespace_for(tenant_slug: str, instance_name: str) -> str:
    """The namespace of a new instance: ``<tenant>--<instance>``, a DNS label of at most 63.

    Injective for valid slugs and names (neither contains ``--``). Existing instances keep
    the namespace stored in their row (the older ``<tenant>-<instance>``): this is only
    the name given at creation and for offline renders.
    """
    namespace = f"{tenant_slug}{NAMESPACE_SEPARATOR}{instance_name}"
    if not _DNS_LABEL.fullmatch(namespace):
        raise InvalidInput(
            f"The namespace {namespace!r} of this instance is not a valid DNS label.",
            errors=[
                ErrorItem(
                    "instance.name",
                    f"'<tenant>--<instance>' must be lowercase letters, digits and '-' and at "
                    f"most {NAMESPACE_MAX} characters (it is {len(namespace)})",
                )
            ],
            hint="Choose a shorter instance name of lowercase letters, digits and '-'.",
        )
    return namespace


def object_id(obj: Mapping[str, Any]) -> str:
    """``apiVersion/kind/name`` — unique inside one namespace (the namespace is implied)."""
    return f"{obj['apiVersion']}/{obj['kind']}/{obj['metadata']['name']}"


def label_value(value: str) -> str:
    """A value Kubernetes accepts as a label value (63 chars of [A-Za-z0-9._-], alnum ends)."""
    cleaned = _LABEL_VALUE_BAD.sub("_", value)[:63]
    return cleaned.strip("._-")


#: Standard labels whose value changes with a plan or version change. They are left off
#: fields the API server never updates, such as a StatefulSet's ``volumeClaimTemplates``:
#: there, a changing label would make every plan change and upgrade fail.
CHANGING_LABELS = frozenset({"app.kubernetes.io/version", f"{LABEL_PREFIX}/plan"})


def standard_labels(
    *,
    service: str,
    app_version: str,
    instance_name: str,
    instance_id: str,
    tenant_slug: str,
    namespace: str,
    plan: str,
) -> dict[str, str]:
    """The labels that every rendered object and every pod template carries."""
    return {
        "app.kubernetes.io/name": label_value(service),
        "app.kubernetes.io/instance": label_value(instance_name),
        "app.kubernetes.io/version": label_value(app_version),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": label_value(namespace),
        f"{LABEL_PREFIX}/tenant": label_value(tenant_slug),
        f"{LABEL_PREFIX}/instance-id": label_value(instance_id),
        f"{LABEL_PREFIX}/service": label_value(service),
        f"{LABEL_PREFIX}/plan": label_value(plan),
    }
