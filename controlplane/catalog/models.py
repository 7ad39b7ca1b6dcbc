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
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

#: A DNS-1123 label: what Kubernetes accepts as a namespace or object name.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
#: A Kubernetes resource quantity such as ``250m``, ``1``, ``512Mi``.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
#: A semantic version without build metadata, e.g. ``25.0.6`` or ``3.0.0-rc.1``.
SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$"

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
    bundle: TemplateBundle

    @property
    def digest(self) -> str:
        """Content digest of the whole release (definition and templates)."""
        body = self.model_dump(mode="json")
        return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)


def canonical_json(value: Any) -> str:
    """The one JSON spelling used for digests: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
