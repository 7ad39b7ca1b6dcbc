"""The wire format of the HTTP API: request and response bodies as pydantic models.

cityctl imports these to parse answers, so this module imports only pydantic, the
standard library, ``controlplane.catalog.models`` and ``controlplane.tenants.names`` (the
pure name rules) — never the database, FastAPI or a domain service. Request models refuse
unknown fields (a typo is an error, not ignored), and every string and number is bounded
so that nothing a client sends can fail later in the database.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from controlplane.catalog.models import (
    DNS_LABEL,
    DataKind,
    EntryPoint,
    NetworkAllows,
    Plan,
    ServiceRelease,
    ServiceVersion,
    SharedCost,
    TemplateBundle,
    VersionStatus,
)
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from controlplane.tenants.names import INSTANCE_NAME_MAX, TENANT_SLUG_MAX, TOKEN_NAME_MAX

INT32_MAX = 2**31 - 1

DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]


class RoleName(StrEnum):
    OPERATOR = "operator"
    TENANT_ADMIN = "tenant-admin"
    TENANT_VIEWER = "tenant-viewer"
    FINANCE = "finance"


class TenantStatusName(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    OFFBOARDED = "offboarded"


class PhaseName(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    COMMITTED = "Committed"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    DELETING = "Deleting"
    DELETED = "Deleted"
    RETAINED = "Retained"


def _check_storable(value: Any, path: str, depth: int = 0) -> None:
    """Refuse what JSON allows but no database stores: NUL, lone surrogates, NaN/∞."""
    if depth > 32:
        raise ValueError(f"{path or 'body'}: nested more than 32 levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'}: contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path or 'value'}: contains a lone surrogate") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path or 'value'}: numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**63 - 1:
            raise ValueError(f"{path or 'value'}: number too large")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path, depth + 1)
            _check_storable(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storable(item, f"{path}[{i}]", depth + 1)


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields are refused, values must be storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        _check_storable(data, "")
        return data


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- problems -----------------------------------------------------------------------------


class ProblemItem(BaseModel):
    location: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    code: str = ""
    errors: list[ProblemItem] = []
    hint: str | None = None
    request_id: str | None = None

    model_config = ConfigDict(extra="allow")


class Page[T](BaseModel):
    items: list[T]
    next_cursor: str | None = None


# -- identity -----------------------------------------------------------------------------


class WhoAmI(Response):
    role: RoleName
    tenant: str | None
    token_name: str
    actor: str


# -- tenants ------------------------------------------------------------------------------


class Contact(RequestBody):
    role: Annotated[str, Field(min_length=1, max_length=50)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    phone: Annotated[str, Field(max_length=40)] | None = None


class MaintenanceWindow(RequestBody):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []
    start: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "22:00"
    end: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "06:00"


#: A KBO/BCE number as people write it (``0207.451.227``, ``0207451227``, ``BE 0207 451 227``);
#: the tenants domain checks its mod-97 digits and stores the ten digits.
EnterpriseNumber = Annotated[
    str, Field(pattern=r"^(BE ?)?[01]?[0-9]{3}[. ]?[0-9]{3}[. ]?[0-9]{3}$", max_length=16)
]
Street = Annotated[str, Field(min_length=1, max_length=200)]
PostalCode = Annotated[str, Field(pattern=r"^[0-9A-Za-z -]{2,10}$")]
City = Annotated[str, Field(min_length=1, max_length=100)]
Country = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]
Quantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$", max_length=20)
]
Year = Annotated[int, Field(ge=1800, le=2200)]


class TenantCreate(RequestBody):
    name: Name
    nis_code: Annotated[str, Field(pattern=r"^[0-9]{5}$")]
    #: Derived from the name when left out.
    slug: Annotated[str, Field(pattern=DNS_LABEL, max_length=TENANT_SLUG_MAX)] | None = None
    inhabitants: Count | None = None
    inhabitants_year: Year | None = None
    enterprise_number: EnterpriseNumber | None = None
    street: Street | None = None
    postal_code: PostalCode | None = None
    city: City | None = None
    country: Country = "BE"
    contacts: list[Contact] = []
    group: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    max_instances: Annotated[int, Field(ge=0, le=10_000)] = 20
    max_cpu: Quantity = "64"
    max_memory: Quantity = "256Gi"
    default_target: DnsLabel | None = None
    maintenance_window: MaintenanceWindow | None = None


class TenantUpdate(RequestBody):
    name: Name | None = None
    inhabitants: Count | None = None
    inhabitants_year: Year | None = None
    enterprise_number: EnterpriseNumber | None = None
    street: Street | None = None
    postal_code: PostalCode | None = None
    city: City | None = None
    country: Country | None = None
    contacts: list[Contact] | None = None
    status: TenantStatusName | None = None
    group: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    max_instances: Annotated[int, Field(ge=0, le=10_000)] | None = None
    max_cpu: Quantity | None = None
    max_memory: Quantity | None = None
    default_target: DnsLabel | None = None
    maintenance_window: MaintenanceWindow | None = None


class TenantPublic(Response):
    id: uuid.UUID
    slug: str
    name: str
    nis_code: str
    inhabitants: int | None
    inhabitants_year: int | None
    enterprise_number: str | None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str = "BE"
    contacts: list[dict[str, Any]] | None
    status: TenantStatusName
    group: str | None
    max_instances: int
    max_cpu: str
    max_memory: str
    default_target: str | None
    maintenance_window: dict[str, Any] | None
    version: int
    created_at: datetime
    updated_at: datetime


class DomainGrant(RequestBody):
    #: A DNS domain the municipality controls; it and its subdomains become usable hosts.
    domain: Annotated[str, Field(min_length=1, max_length=253)]


class DomainPublic(Response):
    domain: str
    granted_by: str
    created_at: datetime


class ImportSummary(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    attribution: str = "Source: Statbel, CC BY 4.0"


# -- tokens -------------------------------------------------------------------------------


class TokenCreate(RequestBody):
    #: A label for people: any text but control characters (it shows in lists and audit).
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=TOKEN_NAME_MAX,
            pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$",
        ),
    ]
    role: RoleName
    tenant: Annotated[str, Field(pattern=DNS_LABEL, max_length=TENANT_SLUG_MAX)] | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = 90


class TokenPublic(Response):
    id: uuid.UUID
    prefix: str
    name: str
    role: RoleName
    tenant: str | None = None
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    #: The bearer token. Shown once; only its hash is stored.
    token: str


# -- catalogue ----------------------------------------------------------------------------


class Correction(RequestBody):
    """A published version whose release may be replaced (docs/catalog.md, "Correcting")."""

    service: DnsLabel
    version: Annotated[str, Field(min_length=1, max_length=64)]


class PublishRequest(RequestBody):
    """Publish from the shipped files (service/version, null = all) or an uploaded release.

    ``correct`` (operators) names published versions whose changed objects replace the
    published release instead of being refused; ``reason`` is then required and audited.
    """

    service: DnsLabel | None = None
    version: Annotated[str, Field(max_length=64)] | None = None
    release: ServiceRelease | None = None
    correct: Annotated[list[Correction], Field(max_length=200)] = []
    reason: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PublishRequest:
        if self.release is not None and (self.service is not None or self.version is not None):
            raise ValueError("give either `release` or `service`/`version`, not both")
        if self.correct and not (self.reason or "").strip():
            raise ValueError("a correction needs a `reason` (it is audited)")
        if self.reason is not None and not self.correct:
            raise ValueError("`reason` is for a correction: name the versions in `correct`")
        return self


class PublishedItem(BaseModel):
    service: str
    version: str
    digest: str
    #: ``amended``: same digest, new metadata (entry points, credentials, migrations);
    #: ``equivalent``: other template source, the same objects: the published one is kept;
    #: ``corrected``: other objects, replaced on purpose (``correct``): a new digest.
    outcome: Literal["created", "unchanged", "amended", "equivalent", "corrected"]
    #: The digest before a correction (``corrected`` only).
    previous_digest: str | None = None
    #: Live instances given a new generation to render the corrected release.
    instances_changed: int | None = None


class PublishResponse(BaseModel):
    published: list[PublishedItem]


class Deprecation(RequestBody):
    support_ends: date | None = None
    message: Annotated[str, Field(max_length=2000)] | None = None


class Retirement(RequestBody):
    message: Annotated[str, Field(max_length=2000)] | None = None


class Reactivation(RequestBody):
    #: Replaces the retirement's message (none: cleared).
    message: Annotated[str, Field(max_length=2000)] | None = None


class TenantUsage(BaseModel):
    tenant: str
    instances: int


class VersionImpact(BaseModel):
    """Who runs a version: what deprecating or retiring it touches (operators only)."""

    service: str
    version: str
    status: VersionStatus
    #: Live (not deleted) instances pinned to this version, and their tenants.
    live_instances: int
    tenants: list[TenantUsage]
    #: Live instances of the service on any version.
    service_live_instances: int
    #: This is the only version new instances can use (active or deprecated).
    last_usable: bool
    #: Retiring it is refused without ``force=true``.
    retire_needs_force: bool


class VersionSummary(BaseModel):
    version: str
    app_version: str
    status: VersionStatus
    support_ends: date | None
    status_message: str | None
    digest: str
    published_at: datetime
    #: Upgrading into this version migrates data forward only (rollbacks across it refused).
    forward_only_migrations: bool = False


class DataPlacePublic(BaseModel):
    """One place the service keeps data (catalogue ``data``) and whether it is backed up."""

    name: str
    kind: DataKind
    holds: str
    #: Derived from the kind (``catalog.data.backup_of``), never declared.
    backup: str


class CatalogService(BaseModel):
    name: str
    title: str
    description: str
    category: str
    owner: str
    versions: list[VersionSummary]
    #: Where the newest published version keeps data, and whether it is backed up.
    data: list[DataPlacePublic] = []


class CatalogVersion(BaseModel):
    """One published version: definition, plans and parameter schema (bundle for operators)."""

    name: str
    title: str
    description: str
    category: str
    owner: str
    version: ServiceVersion
    status: VersionStatus
    support_ends: date | None
    status_message: str | None
    digest: str
    published_at: datetime
    published_by: str | None
    plans: list[Plan]
    parameters: dict[str, Any]
    network: NetworkAllows
    shared_cost: SharedCost | None
    #: Where people reach an instance of it (metadata; ``urls`` of an instance).
    entry_points: list[EntryPoint] = []
    #: Where it keeps data and whether it is backed up (metadata).
    data: list[DataPlacePublic] = []
    bundle: TemplateBundle | None = None


# -- targets ------------------------------------------------------------------------------


class TlsIssuerConfig(RequestBody):
    """The cert-manager ClusterIssuer that signs the certificates of the target's Ingresses
    (a namespaced Issuer would have to exist in every instance namespace: not supported)."""

    kind: Literal["ClusterIssuer"] = "ClusterIssuer"
    name: Annotated[
        str,
        Field(
            max_length=253,
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            description="A DNS-1123 subdomain, e.g. letsencrypt-prod.",
        ),
    ]


class KubernetesConfig(RequestBody):
    kind: Literal["kubernetes"] = "kubernetes"
    kubeconfig: Annotated[str, Field(max_length=1000)] | None = None
    context: Annotated[str, Field(max_length=253)] | None = None
    in_cluster: bool = False
    tls_issuer: TlsIssuerConfig | None = None
    #: Object store for database backups (``cloudnative-pg`` targets): ``s3://bucket/prefix``,
    #: an https endpoint (default: AWS) and a file on the server with the access keys.
    backup_destination: Annotated[str, Field(max_length=1000)] | None = None
    backup_endpoint: Annotated[str, Field(max_length=1000)] | None = None
    backup_credentials_file: Annotated[str, Field(max_length=1000)] | None = None
    #: ``cloudnative-pg``: the operator's namespace (default cnpg-system) and the Kubernetes
    #: API's addresses (default: anywhere on 443/6443), for the database pods' NetworkPolicies.
    cnpg_operator_namespace: Annotated[str, Field(max_length=63)] | None = None
    apiserver_cidrs: (
        Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] | None
    ) = None


class GitOpsConfig(RequestBody):
    kind: Literal["gitops"] = "gitops"
    path: Annotated[str, Field(min_length=1, max_length=1000)]
    git_commit: bool = False
    #: Read access to the cluster the GitOps controller applies to: with it the instances
    #: become Ready from observation; without it they settle at Committed.
    observe_kubeconfig: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    observe_context: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    tls_issuer: TlsIssuerConfig | None = None
    #: Object store for database backups (``cloudnative-pg`` targets): ``s3://bucket/prefix``,
    #: an https endpoint (default: AWS) and a file on the server with the access keys.
    backup_destination: Annotated[str, Field(max_length=1000)] | None = None
    backup_endpoint: Annotated[str, Field(max_length=1000)] | None = None
    backup_credentials_file: Annotated[str, Field(max_length=1000)] | None = None
    #: ``cloudnative-pg``: the operator's namespace (default cnpg-system) and the Kubernetes
    #: API's addresses (default: anywhere on 443/6443), for the database pods' NetworkPolicies.
    cnpg_operator_namespace: Annotated[str, Field(max_length=63)] | None = None
    apiserver_cidrs: (
        Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] | None
    ) = None


class TargetCreate(RequestBody):
    name: DnsLabel
    config: Annotated[KubernetesConfig | GitOpsConfig, Field(discriminator="kind")]
    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{1,2}$")] = (
        DEFAULT_KUBERNETES_VERSION
    )
    services: list[DnsLabel] = []
    #: What runs there for instances to use; one of ``cloudnative-pg``.
    capabilities: Annotated[list[str], Field(max_length=10)] = []
    is_default: bool = False


class TargetPublic(Response):
    id: uuid.UUID
    name: str
    kind: Literal["kubernetes", "gitops"]
    config: dict[str, Any]
    kubernetes_version: str
    services: list[str]
    capabilities: list[str] = []
    is_default: bool
    created_at: datetime


class TargetGrantPublic(Response):
    """A tenant may place instances on a target (the platform default needs no grant)."""

    target: str
    tenant: str
    granted_by: str
    granted_at: datetime


# -- instances ----------------------------------------------------------------------------


Parameters = dict[str, Any]


class RestoreFrom(RequestBody):
    """Create the instance from a backup of another instance of the tenant."""

    instance: Annotated[str, Field(min_length=1, max_length=INSTANCE_NAME_MAX)]
    #: The point in time to recover to (with a UTC offset); null: the latest.
    time: AwareDatetime | None = None


class RestoredFrom(BaseModel):
    """Where an instance's database was recovered from, at its creation."""

    instance: str
    time: datetime | None = None


class InstanceCreate(RequestBody):
    name: Annotated[str, Field(min_length=1, max_length=INSTANCE_NAME_MAX)]
    service: DnsLabel
    #: Null = the newest active version.
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    plan: DnsLabel
    parameters: Parameters = {}
    target: DnsLabel | None = None
    #: Start protected against deletion (a plan declaring ``deletion_protection`` also does).
    deletion_protection: bool = False
    #: Recover the database from another instance's backups (docs/data-safety.md).
    restore_from: RestoreFrom | None = None


class InstanceUpdate(RequestBody):
    plan: DnsLabel | None = None
    parameters: Parameters | None = None
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Rollback(RequestBody):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    revision: Annotated[int, Field(ge=1, le=INT32_MAX)]
    #: Go back across versions whose data migrations only go forward (``allowDataLoss``).
    allow_data_loss: bool = Field(default=False, alias="allowDataLoss")


class Condition(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None  # noqa: N815 (Kubernetes spelling)


class InstanceStatus(BaseModel):
    phase: PhaseName
    conditions: list[Condition]
    observedGeneration: int  # noqa: N815 (Kubernetes spelling)
    message: str | None
    currentRevision: int  # noqa: N815 (Kubernetes spelling)


class InstanceLifecycle(BaseModel):
    """What the pinned version means: upgrade available, deprecated until, retired."""

    upgrade_available: str | None = None
    deprecated: bool = False
    #: Deprecated or retired versions: the last day of support.
    support_ends: date | None = None
    retired: bool = False
    #: One sentence for people, e.g. "… is deprecated, unsupported after 2025-06-30; …".
    message: str = ""


class InstanceURL(BaseModel):
    """An entry point of the instance (catalogue ``entry_points``) as a URL."""

    name: str
    title: str
    url: str


class InstancePublic(BaseModel):
    id: uuid.UUID
    tenant: str
    name: str
    service: str
    version: str
    plan: str
    parameters: Parameters
    target: str
    namespace: str
    #: The host name it answers on (null: the service has no host name).
    hostname: str | None = None
    generation: int
    deletion_requested: bool
    #: Delete is refused (409 ``deletion_protected``) until the protection is lifted.
    deletion_protection: bool = False
    #: Set when its database was recovered from another instance's backups at creation.
    restored_from: RestoredFrom | None = None
    #: Set while retained (deleted without purge): the data is kept until then
    #: (``POST …/restore`` brings the instance back), then purged.
    purge_after: datetime | None = None
    status: InstanceStatus
    created_at: datetime
    updated_at: datetime
    #: Warnings of admission (e.g. a deprecated version); only on write answers.
    warnings: list[str] = []
    #: The version's lifecycle (docs/fleet.md); on list and show answers.
    lifecycle: InstanceLifecycle | None = None
    #: The phase the instance settles at on its target when all goes well: Ready when the
    #: target observes the cluster, Committed for a GitOps target that cannot.
    settles_at: Literal["Ready", "Committed"] = "Ready"
    #: Where people reach it (the release's entry points on its host name); empty when it
    #: has no host name, is being deleted, or its release declares none.
    urls: list[InstanceURL] = []


class RevisionPublic(Response):
    number: int
    generation: int
    version: str
    plan: str
    parameters: Parameters
    digest: str
    inventory: dict[str, str]
    #: The storage its volumes were rendered with: the plan's, or more (volumes never shrink).
    storage: str | None = None
    outcome: str
    message: str | None
    rollback_of: int | None
    created_at: datetime


# -- audit --------------------------------------------------------------------------------


class AuditEventPublic(BaseModel):
    id: uuid.UUID
    at: datetime
    actor: str
    action: str
    resource: str
    tenant: str | None
    request_id: str | None
    source_ip: str | None
    details: dict[str, Any]
    outcome: str


class InstanceBackup(BaseModel):
    """One backup of an instance's database, as the database operator reports it."""

    name: str
    #: The operator's phase (``completed``, ``running``, ``failed``, …); ``pending`` until
    #: the operator reports on it.
    phase: str
    method: str
    started_at: datetime | None
    stopped_at: datetime | None
    #: The ``ScheduledBackup`` that made it; empty for one asked by hand.
    schedule: str
    error: str


class InstanceBackups(BaseModel):
    """The backups of an instance's database, read from its cluster when asked."""

    instance: str
    namespace: str
    backups: list[InstanceBackup]
    #: Cron expressions of the instance's backup schedules.
    schedules: list[str]
    #: The earliest point in time the database can be recovered to; null while no backup
    #: has completed.
    recoverable_from: datetime | None
    last_successful: datetime | None


class InstanceCredentials(BaseModel):
    """The initial administrator credentials of an instance, read from its cluster when
    asked (``Cache-Control: no-store``; never stored, logged or audited)."""

    username: str
    password: str
    #: Where they are: the Secret (a SealedSecret on a GitOps target) and its namespace.
    secret: str
    namespace: str
    #: What the service does with them (e.g. that they only apply at first start).
    note: str
