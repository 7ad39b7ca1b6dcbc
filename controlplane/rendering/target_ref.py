"""What templates are told about the target an instance goes to: the capabilities the
operator declared for it (``cloudnative-pg``: the CloudNativePG operator runs there) and
where database backups go.

The object store's credentials are not in the database: the target's config names a file on
the control plane's host (``backup_credentials_file``), read when an instance is rendered for
the target. The renderer (not a template) adds them as the Secret ``backup-object-store`` of a
stack whose CloudNativePG ``Cluster`` backs up; a GitOps target seals it like every Secret.

This module must not know about templates' files, the database or target clients.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from controlplane.errors import ErrorItem, InvalidInput

#: The capabilities an operator may declare for a target (a closed set).
CLOUDNATIVE_PG = "cloudnative-pg"
CAPABILITIES = (CLOUDNATIVE_PG,)

#: ``s3://bucket/prefix``: a bucket name (S3 rules) and an optional prefix.
_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]*)?")
#: The Secret in an instance namespace holding the object store's access keys.
BACKUP_SECRET = "backup-object-store"  # noqa: S105 (a name)
#: The keys a ``backup_credentials_file`` must hold (``KEY=value`` lines).
CREDENTIAL_KEYS = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
_BACKUP_KEYS = ("backup_destination", "backup_endpoint", "backup_credentials_file")
#: Where the CloudNativePG operator runs unless the target's config says
#: ``cnpg_operator_namespace`` (its pods reach every instance's database pods).
DEFAULT_CNPG_OPERATOR_NAMESPACE = "cnpg-system"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class TargetRef:
    """The target as templates see it: ``target.capabilities``, ``target.backup``."""

    capabilities: tuple[str, ...] = ()
    backup_destination: str | None = None
    backup_endpoint: str | None = None
    #: ``(key, value)`` of the object store's access keys, read from the target's
    #: ``backup_credentials_file`` when rendering for it; never in the template context.
    backup_credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: Why the credentials file could not be read (no path, no content).
    credentials_problem: str | None = None
    #: The namespace of the CloudNativePG operator (``cnpg_operator_namespace``).
    cnpg_operator_namespace: str = DEFAULT_CNPG_OPERATOR_NAMESPACE
    #: The Kubernetes API's addresses (``apiserver_cidrs``); none: anywhere on 443/6443.
    apiserver_cidrs: tuple[str, ...] = ()

    @classmethod
    def from_target(
        cls,
        capabilities: Iterable[str] | None,
        config: Mapping[str, Any] | None,
    ) -> TargetRef:
        """The target's declaration; with a backup destination the credentials file is read
        (a problem with it fails only the renders that need it, see ``backup_secrets``)."""
        config = config or {}
        caps = tuple(sorted(set(capabilities or ())))
        destination = config.get("backup_destination") or None
        credentials: tuple[tuple[str, str], ...] = ()
        problem = None
        if destination and CLOUDNATIVE_PG in caps:
            try:
                found = read_backup_credentials(str(config.get("backup_credentials_file") or ""))
                credentials = tuple(sorted(found.items()))
            except ValueError as exc:
                problem = str(exc)  # raised by the render that needs them
        return cls(
            capabilities=caps,
            backup_destination=destination,
            backup_endpoint=config.get("backup_endpoint") or None,
            backup_credentials=credentials,
            credentials_problem=problem,
            cnpg_operator_namespace=str(
                config.get("cnpg_operator_namespace") or DEFAULT_CNPG_OPERATOR_NAMESPACE
            ),
            apiserver_cidrs=tuple(str(c) for c in config.get("apiserver_cidrs") or ()),
        )

    def context(self) -> dict[str, Any]:
        cnpg = CLOUDNATIVE_PG in self.capabilities
        return {
            "capabilities": list(self.capabilities),
            "backup": {"destination": self.backup_destination, "endpoint": self.backup_endpoint},
            #: The Service apps reach the database at (CloudNativePG's read-write Service).
            "postgres_host": "postgres-rw" if cnpg else "postgres",
        }

    def network(self) -> dict[str, Any]:
        """What the NetworkPolicies of a CloudNativePG ``Cluster`` need to know of the target
        (``baseline.cloudnative_pg_policies``): the operator's namespace, the apiserver's
        addresses and, with a backup destination, the object store's port."""
        port: int | None = None
        if self.backup_destination:
            port = (urlsplit(self.backup_endpoint).port if self.backup_endpoint else None) or 443
        return {
            "operator_namespace": self.cnpg_operator_namespace,
            "apiserver_cidrs": self.apiserver_cidrs,
            "object_store_port": port,
        }

    def backup_secrets(self, stack: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The Secret ``backup-object-store`` the Barman Cloud Plugin's ``ObjectStore``s of a
        stack (its CloudNativePG ``Cluster``'s backups) read their access keys from (none
        without an ObjectStore)."""
        wants = any(
            obj.get("kind") == "ObjectStore"
            and str(obj.get("apiVersion", "")).startswith("barmancloud.cnpg.io/")
            for obj in stack
        )
        if not wants:
            return []
        if self.credentials_problem is not None or not self.backup_credentials:
            # No path in the message: tenants see render errors in instance status.
            raise InvalidInput(
                "The target's object store credentials for database backups cannot be read.",
                errors=[
                    ErrorItem(
                        "target.backup_credentials_file",
                        self.credentials_problem or "not read",
                    )
                ],
                hint="An operator must restore the target's backup credentials file "
                "(ACCESS_KEY_ID=… and SECRET_ACCESS_KEY=… lines) on the control plane's host.",
            )
        return [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": BACKUP_SECRET,
                    "labels": {"app.kubernetes.io/component": "postgres"},
                },
                "type": "Opaque",
                "stringData": dict(self.backup_credentials),
            }
        ]


def check_capabilities(given: Iterable[str]) -> list[str]:
    """The declared capabilities, sorted and without repeats; an unknown one is refused."""
    given = list(given)
    unknown = [c for c in given if c not in CAPABILITIES]
    if unknown:
        allowed = ", ".join(CAPABILITIES)
        raise InvalidInput(
            f"Unknown target capabilit{'y' if len(unknown) == 1 else 'ies'}: "
            f"{', '.join(repr(c) for c in unknown)}; allowed: {allowed}.",
            errors=[ErrorItem("capabilities", f"must be one of {allowed}")],
            hint=f"Give --capability one of: {allowed}.",
        )
    return sorted(set(given))


def check_backup_config(config: Mapping[str, Any], capabilities: Iterable[str]) -> None:
    """``backup_destination`` is ``s3://bucket/prefix``; ``backup_endpoint`` an https URL;
    both need the ``cloudnative-pg`` capability (the operator takes the backups) and the
    destination needs ``backup_credentials_file``, a file on the control plane's host."""
    check_network_config(config)
    destination = config.get("backup_destination")
    endpoint = config.get("backup_endpoint")
    credentials = config.get("backup_credentials_file")
    if not any(config.get(k) for k in _BACKUP_KEYS):
        return
    hint = (
        "Give --backup-destination s3://BUCKET/PREFIX, --backup-credentials-file FILE (a file "
        "on the control plane's host with ACCESS_KEY_ID=… and SECRET_ACCESS_KEY=… lines) and "
        "optionally --backup-endpoint https://HOST, on a target with --capability cloudnative-pg."
    )
    if CLOUDNATIVE_PG not in set(capabilities):
        raise InvalidInput(
            "Database backups need the cloudnative-pg capability on the target.",
            errors=[ErrorItem("capabilities", "must include cloudnative-pg for backups")],
            hint=hint,
        )
    if not isinstance(destination, str) or not _S3_URL.fullmatch(destination):
        raise InvalidInput(
            "backup_destination must be an s3://bucket/prefix URL.",
            errors=[ErrorItem("config.backup_destination", "must be s3://bucket/prefix")],
            hint=hint,
        )
    if endpoint is not None:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname or parts.username:
            raise InvalidInput(
                "backup_endpoint must be an https:// URL without credentials.",
                errors=[ErrorItem("config.backup_endpoint", "must be an https URL")],
                hint=hint,
            )
    if not isinstance(credentials, str) or not credentials:
        raise InvalidInput(
            "A backup destination needs backup_credentials_file.",
            errors=[ErrorItem("config.backup_credentials_file", "is required with a destination")],
            hint=hint,
        )
    try:
        read_backup_credentials(credentials)
    except ValueError as exc:
        # Nothing of the file is quoted: it holds credentials (or is not ours at all).
        raise InvalidInput(
            f"backup_credentials_file: {exc}.",
            errors=[ErrorItem("config.backup_credentials_file", str(exc))],
            hint=hint,
        ) from None


def check_network_config(config: Mapping[str, Any]) -> None:
    """``cnpg_operator_namespace`` is a namespace name (a DNS label); ``apiserver_cidrs`` a
    list of IPv4/IPv6 CIDRs (the Kubernetes API's addresses, for the database pods' egress)."""
    namespace = config.get("cnpg_operator_namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace)
    ):
        raise InvalidInput(
            "cnpg_operator_namespace must be a namespace name (a DNS label).",
            errors=[ErrorItem("config.cnpg_operator_namespace", "must be a DNS label")],
            hint="Give --cnpg-operator-namespace the namespace the CloudNativePG operator "
            "runs in, e.g. cnpg-system.",
        )
    cidrs = config.get("apiserver_cidrs")
    if cidrs is None:
        return
    bad = not isinstance(cidrs, list) or not cidrs
    for cidr in cidrs if isinstance(cidrs, list) else ():
        try:
            ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            bad = True
    if bad:
        raise InvalidInput(
            "apiserver_cidrs must be a list of network addresses such as 10.0.0.1/32.",
            errors=[ErrorItem("config.apiserver_cidrs", "must be CIDRs such as 10.0.0.1/32")],
            hint="Give --apiserver-cidr once per address of the Kubernetes API: the "
            "`kubernetes` Service's ClusterIP and its endpoints (kubectl get endpointslices "
            "-n default -l kubernetes.io/service-name=kubernetes).",
        )


def read_backup_credentials(path: str) -> dict[str, str]:
    """``ACCESS_KEY_ID`` and ``SECRET_ACCESS_KEY`` from a ``KEY=value`` file on this host;
    ValueError names what is wrong without quoting the file."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, RuntimeError):
        raise ValueError("no readable file at that path on the control plane's host") from None
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() in CREDENTIAL_KEYS and value.strip():
            found[key.strip()] = value.strip()
    missing = [k for k in CREDENTIAL_KEYS if k not in found]
    if missing:
        raise ValueError(f"the file has no {' and no '.join(missing)} line")
    return found
