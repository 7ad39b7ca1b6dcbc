"""TLS through cert-manager: when the target names an issuer, every Ingress of a stack gets
``spec.tls`` and one ``cert-manager.io/v1`` ``Certificate`` (see docs/rendering.md).

An explicit Certificate, rather than only the ``cert-manager.io/cluster-issuer`` annotation,
is what the API server checks against cert-manager's CRD and what readiness can look at.
Only a ``ClusterIssuer`` is supported: a namespaced ``Issuer`` would have to exist in every
instance namespace, and the platform creates those namespaces per instance.

This module must not know about templates, targets or the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: A DNS-1123 subdomain, the rule for the name of a (Cluster)Issuer.
ISSUER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
ISSUER_KINDS = ("ClusterIssuer",)


@dataclass(frozen=True)
class TlsIssuer:
    """The cert-manager issuer a target's Ingresses get their certificates from."""

    name: str
    kind: Literal["ClusterIssuer"] = "ClusterIssuer"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> TlsIssuer | None:
        """The ``tls_issuer`` of a target's config, if set (validated when stored)."""
        given = (config or {}).get("tls_issuer")
        if not isinstance(given, Mapping) or not given.get("name"):
            return None
        return cls(name=str(given["name"]), kind=given.get("kind", "ClusterIssuer"))


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 253 and ISSUER_NAME.fullmatch(name) is not None


def _hosts(ingress: Mapping[str, Any]) -> list[str]:
    spec = ingress.get("spec")
    rules = spec.get("rules") if isinstance(spec, Mapping) else None
    hosts: list[str] = []
    for rule in rules if isinstance(rules, list) else []:
        host = rule.get("host") if isinstance(rule, Mapping) else None
        if isinstance(host, str) and host and host not in hosts:
            hosts.append(host)
    return hosts


def with_tls(stack: list[dict[str, Any]], issuer: TlsIssuer) -> list[dict[str, Any]]:
    """The stack's Ingresses terminate TLS; returns the Certificates to add (in stack order).

    Each Ingress with hosts gets ``spec.tls: [{hosts, secretName: <name>-tls}]`` (replacing
    what the template wrote) and a Certificate of the same name for the same hosts.
    """
    certificates: list[dict[str, Any]] = []
    for obj in stack:
        if obj.get("apiVersion") != "networking.k8s.io/v1" or obj.get("kind") != "Ingress":
            continue
        hosts = _hosts(obj)
        spec = obj.get("spec")
        if not hosts or not isinstance(spec, dict):
            continue
        secret = f"{obj['metadata']['name']}-tls"
        spec["tls"] = [{"hosts": list(hosts), "secretName": secret}]
        certificates.append(
            {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": secret},
                "spec": {
                    "secretName": secret,
                    "dnsNames": list(hosts),
                    "issuerRef": {
                        "name": issuer.name,
                        "kind": issuer.kind,
                        "group": "cert-manager.io",
                    },
                },
            }
        )
    return certificates
