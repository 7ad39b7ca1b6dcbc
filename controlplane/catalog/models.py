"""The service catalogue as data: what a catalogue file declares, and what gets published.

A catalogue file (``catalog/<service>.yaml``) is a :class:`ServiceDefinition`: one service
with all its versions and plans. Publishing one version freezes a :class:`ServiceRelease`
— the service-level fields, that one version, the plans, the parameter schema and the
template bundle text — which is immutable, so that an instance can be re-rendered or
rolled back years later even after the files changed.

This module must not know about files, Jinja2 or the database; loading and checking
files is ``catalog.loading``, turning a release into objects is ``rendering``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

#: A DNS-1123 label: what Kubernetes accepts as a namespace or object name.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
#: A Kubernetes resource quantity such as ``250m``, ``1``, ``512Mi``.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
#: A semantic version without build metadata, e.g. ``25.0.6`` or ``3.0.0-rc.1``.
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"

#: Parts of an entry point's URL around the instance's host name (``api.``, ``/admin/``).
HOST_PREFIX = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*$"
URL_PATH = r"^/[A-Za-z0-9._~/%-]*$"
#: A key of a Secret's data, and the name of a generated credential (``secrets.<name>``).
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a password
CREDENTIAL_NAME = r"^[a-z][a-z0-9_]*$"

DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
Quantity = Annotated[str, Field(pattern=QUANTITY)]
SemVer = Annotated[str, Field(pattern=SEMVER)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class _Strict(BaseModel):
    # Unknown keys are mistakes in a catalogue file, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionStatus(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class SharingKey(StrEnum):
    EQUAL = "equal"
    INHABITANTS = "inhabitants"
    USAGE = "usage"
    MIXED = "mixed"


class RequestLimit(_Strict):
    request: Quantity
    limit: Quantity


class Plan(_Strict):
    """A size of the stack that a municipality can choose and pays for per month."""

    name: DnsLabel
    title: str
    description: str = ""
    monthly_price: Money
    #: Replicas of the stack's scalable (web) workloads.
    replicas: int = Field(ge=1, le=20)
    #: Requests and limits of each main application container.
    cpu: RequestLimit
    memory: RequestLimit
    #: Size of the stack's main persistent volume(s).
    storage: Quantity
    #: Instances created on (or changed to) this plan start protected against deletion
    #: (``cityctl instance unprotect`` lifts it). Metadata: not part of the release digest.
    deletion_protection: bool = False
    #: Days an instance's data (volumes, Secrets, namespace) is kept after ``instance
    #: delete`` without ``--purge``. Metadata: not part of the release digest.
    retention_days: int = Field(default=30, ge=0, le=3650)


class AdminCredentials(_Strict):
    """Where a stack keeps the initial administrator's credentials: keys of one rendered
    Secret. ``rotates`` names the generated credential (``secrets.<name>`` in the templates)
    that ``cityctl instance credentials --rotate`` replaces."""

    secret: DnsLabel
    username_key: str = Field(pattern=SECRET_KEY, max_length=253)
    password_key: str = Field(pattern=SECRET_KEY, max_length=253)
    rotates: str = Field(pattern=CREDENTIAL_NAME, max_length=63)
    #: Said with the credentials, e.g. that a rotated password applies at the next restart.
    note: str = ""


class ServiceVersion(_Strict):
    """One version of a service, as declared in its catalogue file."""

    version: SemVer
    #: Folder under ``templates/`` with the Jinja2 templates of this version.
    templates: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]*$")
    app_version: str
    #: Images by role (``web``, ``worker``, ``postgres`` …), each ``registry/repo:tag``.
    images: dict[str, str]
    #: Comma-separated semver comparators, e.g. ``>=24.0.0,<25.0.0``; the versions an
    #: instance may upgrade from. Empty for the oldest version.
    upgrade_from: str = ""
    status: VersionStatus = VersionStatus.ACTIVE
    support_ends: date | None = None
    #: True when upgrading into this version migrates the data in a way older versions
    #: cannot read (schema migrations that only go forward): rolling back across it loses
    #: data unless a backup is restored. Metadata: not part of the release digest.
    forward_only_migrations: bool = False
    #: Where this version keeps the admin credentials, when it differs from the service's
    #: ``admin_credentials`` (an upstream renamed its variables). Metadata.
    admin_credentials: AdminCredentials | None = None


class ExposedPort(_Strict):
    """A component that the ingress controller may reach."""

    component: DnsLabel
    port: int = Field(ge=1, le=65535)


class EgressRule(_Strict):
    """A component that may reach outside its namespace on these TCP ports."""

    component: DnsLabel
    ports: list[Annotated[int, Field(ge=1, le=65535)]]


class NetworkAllows(_Strict):
    """What the stack may reach beyond the default-deny baseline.

    DNS and traffic inside the namespace are always allowed.
    """

    ingress: list[ExposedPort] = []
    egress: list[EgressRule] = []


class SharedCost(_Strict):
    """A monthly cost of the service itself (licence, maintenance) shared by its users."""

    monthly: Money
    key: SharingKey
    #: For the ``mixed`` key: the percentage split equally; the rest goes by inhabitants.
    equal_percent: Annotated[Decimal, Field(ge=0, le=100)] | None = None


class EntryPoint(_Strict):
    """Where people reach a running instance, e.g. the public site or the admin console.

    The URL is ``https://<host_prefix><instance host><path>``: the instance's host name is
    decided at admission, so only the parts around it are declared here.
    """

    name: DnsLabel
    title: str
    #: Prefix of the instance's host name for stacks that serve several hosts (``api.``).
    host_prefix: str = Field(default="", pattern=HOST_PREFIX, max_length=200)
    path: str = Field(default="/", pattern=URL_PATH, max_length=200)

    def url(self, hostname: str) -> str:
        return f"https://{self.host_prefix}{hostname}{self.path}"


#: An absolute path inside a container.
CONTAINER_PATH = r"^/[A-Za-z0-9._/-]*$"
#: An environment variable name as Kubernetes accepts it (C identifier style, also ``.``/``-``).
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
ContainerPath = Annotated[str, Field(pattern=CONTAINER_PATH, max_length=4096)]


class PublishedTag(_Strict):
    """Where the publication of one image tag is shown upstream."""

    #: The upstream git tag the image tag is built from; None for images built from a
    #: commit that ``published_by`` names (the official images' library files).
    git_tag: str | None = Field(min_length=1, max_length=200)
    #: The file that builds and pushes that tag (a workflow, a library file), with a word
    #: on how (``.github/workflows/release.yml (on tag push)``).
    published_by: str = Field(min_length=1, max_length=500)


class ImageFacts(_Strict):
    """What one upstream image expects at run time, read from its sources at one tag.

    ``catalog validate`` checks the rendered containers of this image against it: their
    user id, ports, probe paths, mounted paths and environment variable names. Every tag
    of the image that a version uses must be listed in ``tags``, so an image tag cannot
    change without the sheet being updated with its source.
    """

    #: The upstream repository the image is built from (a URL).
    source: str = Field(pattern=r"^https://[^\s]+$", max_length=500)
    #: Every tag of this image the catalogue uses, with where its publication is shown.
    tags: dict[str, PublishedTag] = Field(min_length=1)
    #: The upstream tag whose files the facts below were read from.
    read_at: str = Field(min_length=1, max_length=200)
    #: The files read at ``read_at`` (Dockerfile, settings, entry scripts).
    files: list[str] = Field(min_length=1)
    #: The numeric user id the image runs as; None when any non-root user id works.
    user: int | None = Field(ge=0, le=2**31 - 1)
    #: Ports the process listens on in the container.
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = []
    #: Paths the process writes to: where templates may mount volumes (and paths under them).
    writable: list[ContainerPath] = []
    #: Paths where templates may mount configuration files read-only.
    read_only: list[ContainerPath] = []
    #: HTTP paths a probe may call.
    health: list[Annotated[str, Field(pattern=URL_PATH, max_length=200)]] = []
    #: Environment variable names the image reads that the templates may set.
    env: list[Annotated[str, Field(pattern=ENV_NAME, max_length=253)]] = []
    #: Environment variable names that the platform's own files read rather than the image
    #: (a configuration file or script the templates mount, e.g. ``platform.config.php``).
    platform_env: list[Annotated[str, Field(pattern=ENV_NAME, max_length=253)]] = []
    #: What a template author must know that the lists above cannot say.
    notes: str = ""


class DataKind(StrEnum):
    """What keeps a service's data: the PostgreSQL component, another database, a volume."""

    POSTGRESQL = "postgresql"
    MARIADB = "mariadb"
    REDIS = "redis"
    RABBITMQ = "rabbitmq"
    ELASTICSEARCH = "elasticsearch"
    SOLR = "solr"
    VOLUME = "volume"


class DataPlace(_Strict):
    """One place a service keeps data (catalogue ``data``), checked against its renders.

    A database names the StatefulSet that runs it (``postgres`` for the PostgreSQL
    component); a volume names the PersistentVolumeClaim. Whether it is backed up is
    derived from the kind (``catalog.data.backup_of``), never declared.
    """

    name: DnsLabel
    kind: DataKind
    #: What it holds, in a few words (``the files users upload``).
    holds: str = Field(min_length=1, max_length=300)


#: Image facts by image repository (the reference without its tag: ``postgis/postgis``).
ImageFactsSheet = dict[str, ImageFacts]


#: Release fields that describe a release without changing what it renders. They are left
#: out of its digest, so they can be added or corrected on a published version
#: ("amended") without changing the digest every instance was rendered from.
METADATA_FIELDS = ("entry_points", "admin_credentials", "data")
METADATA_VERSION_FIELDS = ("forward_only_migrations", "admin_credentials")
METADATA_PLAN_FIELDS = ("deletion_protection", "retention_days")


class ServiceDefinition(_Strict):
    """The contents of one catalogue file."""

    name: DnsLabel
    title: str
    description: str
    category: str
    owner: str
    versions: list[ServiceVersion] = Field(min_length=1)
    plans: list[Plan] = Field(min_length=1)
    #: JSON Schema (draft 2020-12) of the parameters, with a default for each optional one.
    parameters: dict[str, Any]
    network: NetworkAllows = NetworkAllows()
    shared_cost: SharedCost | None = None
    entry_points: list[EntryPoint] = []
    admin_credentials: AdminCredentials | None = None
    #: The facts sheet of the images this service's versions use that the shared sheet
    #: (``catalog/_images.yaml``) does not cover. Catalogue checks only: never published.
    facts: ImageFactsSheet = {}
    #: Every place the service keeps data (databases, volumes); published as metadata.
    data: list[DataPlace] = []

    def version(self, version: str) -> ServiceVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)

    def release(self, version: ServiceVersion, bundle: TemplateBundle) -> ServiceRelease:
        """Freeze one of this service's versions, with its templates, into a release."""
        return ServiceRelease(
            name=self.name,
            title=self.title,
            description=self.description,
            category=self.category,
            owner=self.owner,
            version=version,
            plans=self.plans,
            parameters=self.parameters,
            network=self.network,
            shared_cost=self.shared_cost,
            entry_points=self.entry_points,
            admin_credentials=self.admin_credentials,
            data=self.data,
            bundle=bundle,
        )


class TemplateBundle(_Strict):
    """The template files of one service version, by relative path, as text."""

    files: dict[str, str]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.files).encode()).hexdigest()


class ServiceRelease(_Strict):
    """One published version of a service: everything needed to render it, frozen."""

    name: DnsLabel
    title: str
    description: str
    category: str
    owner: str
    version: ServiceVersion
    plans: list[Plan]
    parameters: dict[str, Any]
    network: NetworkAllows = NetworkAllows()
    shared_cost: SharedCost | None = None
    entry_points: list[EntryPoint] = []
    admin_credentials: AdminCredentials | None = None
    #: Where the service keeps data (metadata: left out of the digest).
    data: list[DataPlace] = []
    bundle: TemplateBundle

    @property
    def digest(self) -> str:
        """Content digest of the release (definition and templates) without its metadata.

        The metadata fields (``METADATA_FIELDS``) are left out whatever their value, so
        releases published before they existed keep their digest.
        """
        body = self.model_dump(mode="json", exclude=_METADATA_EXCLUDE)
        return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def credentials(self) -> AdminCredentials | None:
        """Where this release keeps its admin credentials: the version's, else the service's."""
        return self.version.admin_credentials or self.admin_credentials

    def metadata(self) -> dict[str, Any]:
        """The metadata fields as stored (what amending a published version may change)."""
        dumped = self.model_dump(mode="json", include=_METADATA_EXCLUDE)
        return {**{k: v for k, v in dumped.items() if k != "version"}, **dumped["version"]}

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)


_METADATA_EXCLUDE: Any = {
    **dict.fromkeys(METADATA_FIELDS, True),
    "version": set(METADATA_VERSION_FIELDS),
    "plans": {"__all__": set(METADATA_PLAN_FIELDS)},
}


def canonical_json(value: Any) -> str:
    """The one JSON spelling used for digests: sorted keys, no spaces, UTF-8.

    That spelling is ``json``'s, and every stored digest depends on it. orjson writes the
    same bytes about ten times faster (a tenth of a render's CPU went to this function),
    except for floats (``0.00001`` where ``json`` writes ``1e-05``) and NaN (``null``), and
    it refuses what ``json`` might write differently (integers past 64 bits, keys that are
    not strings, dataclasses, dates). So ``json`` writes a value that orjson refuses, one
    that is not a list or mapping, and one whose output holds a float or a ``null``; tests
    compare both on generated values.
    """
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _CANONICAL.encode(value)
    if data[-1:] not in b"]}" or b"null" in data or _FLOAT.search(data) is not None:
        return _CANONICAL.encode(value)
    return data.decode()


# One encoder for every digest: ``json.dumps`` with options builds one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
#: The end of a number with a fraction or an exponent, inside a list or mapping. Text in a
#: string may match too (``"x:1.5,y"``): that only costs the slower path. (A simpler search
#: than a whole JSON number: Python's ``re`` takes about 10 ns per byte either way.)
_FLOAT = re.compile(rb"[0-9][.e][-+0-9]*[0-9][,\]}]")
