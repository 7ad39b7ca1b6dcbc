"""The rules for names the outside world sees: tenant slugs, instance names, host names.

A tenant slug and an instance name become a Kubernetes namespace (``<tenant>--<instance>``)
and a host name (``<instance>.<tenant>.<platform domain>``); both must be unique across
tenants, so the rules that make those mappings injective live here, in one place, below
everything that uses them (tenants, admission, rendering).

This module must not know about the database, HTTP or Kubernetes clients.
"""

from __future__ import annotations

import re

#: A DNS label (RFC 1123), always full-matched: lowercase letters, digits and '-', alnum ends.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

#: Separates tenant and instance in a namespace. Neither a tenant slug nor an instance
#: name may contain it (nor start or end with '-'), so its first occurrence is the boundary
#: and ``namespace_for`` is injective: two different (tenant, instance) pairs never share
#: a namespace.
NAMESPACE_SEPARATOR = "--"
NAMESPACE_MAX = 63

#: The one length limit of each name: the API request models, the database columns,
#: the admission checks, the CLI help and the error messages all use these.
TENANT_SLUG_MAX = 40
#: An instance name; the namespace ``<tenant>--<instance>`` must also fit NAMESPACE_MAX,
#: so under a long slug the room is smaller (admission says how many characters are left).
INSTANCE_NAME_MAX = 40
#: A target name and a DNS label (RFC 1123).
TARGET_NAME_MAX = 63
LABEL_MAX = 63
#: An API token's label (free text).
TOKEN_NAME_MAX = 100

#: The platform's own DNS domain: default hostnames live under ``<tenant>.<domain>``; it
#: (and anything above or below it) can never be granted to a tenant.
PLATFORM_DOMAIN = "apps.city-platform.local"

#: Tenant slugs that are refused because the namespaces they lead to belong to Kubernetes,
#: the platform or common cluster add-ons (the one list; docs/api.md shows it).
RESERVED_SLUGS = frozenset(
    {
        "default",
        "kube",
        "openshift",
        "city-platform",
        "ingress-nginx",
        "ingress",
        "cert-manager",
        "sealed-secrets",
        "flux-system",
        "argocd",
        "monitoring",
        "logging",
        "istio-system",
        "linkerd",
        "gatekeeper-system",
        "kyverno",
        "velero",
        "local-path-storage",
    }
)
#: Prefixes reserved by Kubernetes and distributions (``kube-system``, ``openshift-…``).
RESERVED_PREFIXES = ("kube-", "openshift-", "city-platform-")


def is_dns_label(value: str) -> bool:
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None


def name_rule(max_length: int) -> str:
    """A tenant slug's or instance name's rule, in words."""
    return (
        f"use 1 to {max_length} lower-case letters, digits and single hyphens, "
        "starting and ending with a letter or digit"
    )


def name_problem(value: str, *, max_length: int) -> str | None:
    """Why ``value`` cannot be a tenant slug or instance name (None: it can)."""
    if not is_dns_label(value) or len(value) > max_length:
        return name_rule(max_length)
    if NAMESPACE_SEPARATOR in value:
        return (
            f"{name_rule(max_length)} (two hyphens in a row separate tenant and instance "
            "in namespaces)"
        )
    return None


def reserved_slug(slug: str) -> bool:
    """Whether ``slug`` names (or starts) a namespace that belongs to the cluster itself."""
    return slug in RESERVED_SLUGS or slug.startswith(RESERVED_PREFIXES)


HOSTNAME_MAX = 253


def hostname_problem(value: str) -> str | None:
    """Why ``value`` is not a host name the platform routes (None: it is)."""
    labels = value.split(".") if isinstance(value, str) else []
    if (
        not value
        or len(value) > HOSTNAME_MAX
        or len(labels) < 2
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
    ):
        return (
            "use a lower-case DNS name of at least two dot-separated labels, at most "
            f"{HOSTNAME_MAX} characters; each label 1 to {LABEL_MAX} letters, digits and "
            "hyphens, starting and ending with a letter or digit, e.g. forms.gent.be"
        )
    return None


def within(hostname: str, domain: str) -> bool:
    """Whether ``hostname`` is ``domain`` or a subdomain of it (label-wise, not by suffix)."""
    return hostname == domain or hostname.endswith("." + domain)


def default_hostname(tenant_slug: str, instance_name: str, domain: str = PLATFORM_DOMAIN) -> str:
    """The host of an instance that names none: ``<instance>.<tenant>.<domain>``.

    Injective like the namespace (one DNS label each, the tenant's zone under the platform
    domain is its own). The older templates' ``<instance>-<tenant>.<domain>`` was not.
    """
    return f"{instance_name}.{tenant_slug}.{domain}"
