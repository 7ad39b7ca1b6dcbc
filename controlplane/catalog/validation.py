"""Check a whole catalogue and report every problem at once, by file and key path.

Loading (``catalog.loading``) checks each file's shape. This module adds the rules that
need more than one key, the template folder or the renderer: file name equals service
name, no duplicate versions or plans, pinned images, meaningful ``upgrade_from`` ranges,
status rules, requests not above limits, a parameter schema that is valid JSON Schema with
valid defaults, a complete ``shared_cost``, no YAML that YAML 1.1 and 1.2 read differently
in catalogue files and templates (``catalog.yaml_traps``) — and then renders every
version x plan with default parameters, reports what the renderer finds, and compares the
renders of every plan change and upgrade for fields the apiserver refuses to change
(``catalog.transitions``), and checks what the file says about the stack against what it
renders (:func:`check_rendered`: network components, entry points, admin credentials) and
what its images expect (``catalog.facts``: user ids, ports, probes, mounts, environment,
and a cited upstream source for every image tag), and where it keeps data
(``catalog.data``: every volume and database of the stack declared). It never stops at
the first problem: a catalogue author gets the whole list in one run. Publishing runs the
same checks (:func:`check_services`).

The renderer sits in a layer above the catalogue (``rendering`` imports ``catalog``), so
this module does not import it: the caller passes a :data:`StackCheck` and an
:class:`UpdateCheck` (``rendering.catalog_checks`` builds both). Without them, only the
static rules run.

This module must not know about Jinja2, Kubernetes schemas or the database.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema_rs

from controlplane.catalog.data import check_data
from controlplane.catalog.errors import CatalogInvalid, VersionRangeInvalid
from controlplane.catalog.facts import check_containers, check_sheet, sheet_for
from controlplane.catalog.loading import (
    COMPONENTS_FOLDER,
    Catalog,
    display_path,
    read_bundle,
    read_catalog,
    service_files,
    template_folder,
)
from controlplane.catalog.models import (
    Plan,
    RequestLimit,
    ServiceDefinition,
    ServiceRelease,
    SharingKey,
    TemplateBundle,
    VersionStatus,
)
from controlplane.catalog.transitions import Objects, UpdateCheck, check_transitions
from controlplane.catalog.versions import parse_range, parse_version
from controlplane.catalog.yaml_traps import bundle_errors, file_errors
from controlplane.errors import ControlPlaneError, ErrorItem

#: Renders one release in one plan with the given parameters, checks the objects and
#: returns them; raises a :class:`ControlPlaneError` whose ``errors`` say what is wrong.
StackCheck = Callable[[ServiceRelease, Plan, Mapping[str, Any]], Sequence[Mapping[str, Any]]]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
#: A parameter name must work as ``params.<name>`` in a template and in ``--set a.b=v``.
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_QUANTITY_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


@dataclass
class CatalogReport:
    """What a validation run found and how much it covered."""

    errors: list[ErrorItem] = field(default_factory=list)
    services: int = 0
    versions: int = 0
    #: Version x plan combinations rendered and checked (0 without a stack check).
    stacks: int = 0
    #: Pairs of plans of one version, and (older version, version, plan) upgrades, whose
    #: renders were compared for refused updates (0 without an update check).
    plan_changes: int = 0
    upgrades: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_catalog(
    catalog_dir: Path | None = None,
    templates_dir: Path | None = None,
    *,
    check_stack: StackCheck | None = None,
    check_update: UpdateCheck | None = None,
) -> list[ErrorItem]:
    """Every error of the catalogue (default: the shipped one); empty when it is clean."""
    return check_catalog(
        catalog_dir, templates_dir, check_stack=check_stack, check_update=check_update
    ).errors


def check_catalog(
    catalog_dir: Path | None = None,
    templates_dir: Path | None = None,
    *,
    check_stack: StackCheck | None = None,
    check_update: UpdateCheck | None = None,
) -> CatalogReport:
    """Validate the catalogue and count what was checked (for the command's summary)."""
    try:
        catalog, errors = read_catalog(catalog_dir, templates_dir)
    except CatalogInvalid as exc:
        return CatalogReport(errors=list(exc.errors))
    report = CatalogReport(errors=errors)
    if not catalog.files and not errors:
        report.errors.append(
            ErrorItem(str(catalog.catalog_dir), "the catalogue has no service files (*.yaml)")
        )
    loaded = set(catalog.files.values())
    for path in service_files(catalog.catalog_dir):
        if path not in loaded:  # the YAML traps of a file that did not load, too
            report.errors.extend(file_errors(path, display_path(path, catalog.catalog_dir)))
    _check_services(catalog, sorted(catalog.services), report, check_stack, check_update)
    return report


def check_services(
    catalog: Catalog,
    names: Sequence[str],
    *,
    check_stack: StackCheck | None = None,
    check_update: UpdateCheck | None = None,
) -> CatalogReport:
    """Validate some services of a loaded catalogue: what publishing them requires."""
    report = CatalogReport()
    _check_services(catalog, names, report, check_stack, check_update)
    return report


def _check_services(
    catalog: Catalog,
    names: Sequence[str],
    report: CatalogReport,
    check_stack: StackCheck | None,
    check_update: UpdateCheck | None,
) -> None:
    linted: set[str] = set()  # template folders, each checked once
    for name in names:
        definition = catalog.definition(name)
        report.services += 1
        report.versions += len(definition.versions)
        _check_service(catalog, definition, report, linted, check_stack, check_update)


def _check_service(
    catalog: Catalog,
    definition: ServiceDefinition,
    report: CatalogReport,
    linted: set[str],
    check_stack: StackCheck | None,
    check_update: UpdateCheck | None,
) -> None:
    where = catalog.location(definition.name)
    path = catalog.files.get(definition.name)
    errors = report.errors
    if path is not None:
        errors.extend(file_errors(path, where))
    if path is not None and path.name.rsplit(".", 1)[0] != definition.name:
        errors.append(
            ErrorItem(
                f"{where}: name",
                f"{definition.name!r} must equal the file name {path.name.rsplit('.', 1)[0]!r} "
                f"(rename the file to {definition.name}.yaml or fix the name)",
            )
        )
    errors.extend(_item(where, key, msg) for key, msg in check_versions(definition))
    errors.extend(_item(where, key, msg) for key, msg in check_plans(definition))
    parameter_problems = list(check_parameters(definition.parameters))
    errors.extend(_item(where, key, msg) for key, msg in parameter_problems)
    errors.extend(_item(where, key, msg) for key, msg in check_shared_cost(definition))
    errors.extend(
        _item(where, key, msg) for key, msg in check_sheet(definition, catalog.shared_facts)
    )

    bundles: dict[int, TemplateBundle] = {}
    for index, version in enumerate(definition.versions):
        key = f"{where}: versions[{index}].templates"
        try:
            folder = template_folder(catalog.templates_dir, version.templates, location=key)
            bundles[index] = read_bundle(
                folder, location=key, components=catalog.templates_dir / COMPONENTS_FOLDER
            )
        except CatalogInvalid as exc:
            errors.extend(exc.errors or [ErrorItem(key, exc.detail)])
            continue
        if version.templates not in linted:
            linted.add(version.templates)
            errors.extend(bundle_errors(bundles[index], version.templates))

    # Rendering with a broken parameter schema would only repeat its errors.
    if check_stack is None or parameter_problems:
        return
    parameters = example_parameters(definition.parameters)
    sheet = sheet_for(definition, catalog.shared_facts)
    renders: dict[tuple[int, str], Objects] = {}
    for index, bundle in bundles.items():
        version = definition.versions[index]
        release = definition.release(version, bundle)
        seen: set[tuple[str, str]] = set()
        for plan in definition.plans:
            report.stacks += 1
            try:
                renders[index, plan.name] = check_stack(release, plan, parameters)
            except ControlPlaneError as exc:
                prefix = f"{where}: versions[{index}] {version.version}, plan {plan.name}"
                # The same template mistake breaks every plan: report it once per version.
                for item in exc.errors or [ErrorItem("", exc.detail)]:
                    if (item.location, item.message) in seen:
                        continue
                    seen.add((item.location, item.message))
                    location = f"{prefix}: {item.location}" if item.location else prefix
                    errors.append(ErrorItem(location, item.message))
        first = renders.get((index, definition.plans[0].name))
        if first is not None:
            prefix = f"{where}: versions[{index}] {version.version}"
            errors.extend(_item(prefix, key, msg) for key, msg in check_rendered(release, first))
            errors.extend(_item(prefix, key, msg) for key, msg in check_containers(sheet, first))
    # Where the service keeps data, against one render of every version.
    first_renders = {
        definition.versions[index].version: objects
        for (index, plan), objects in renders.items()
        if plan == definition.plans[0].name
    }
    if len(first_renders) == len(definition.versions):  # else the render errors say why
        errors.extend(_item(where, key, msg) for key, msg in check_data(definition, first_renders))
    if check_update is not None:
        # Plan changes and upgrades re-apply the objects: an immutable field that differs
        # between two renders is a 422 from the apiserver halfway through the change.
        transitions = check_transitions(definition, renders, check_update)
        errors.extend(_item(where, key, msg) for key, msg in transitions.problems)
        report.plan_changes += transitions.plan_changes
        report.upgrades += transitions.upgrades


_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_COMPONENT = "app.kubernetes.io/component"


def check_rendered(release: ServiceRelease, objects: Objects) -> Iterator[Problem]:
    """What the catalogue file says about the stack, against what one render of it holds.

    - every ``network`` component is the ``app.kubernetes.io/component`` label of a
      workload's pods (else its network policy selects nothing: the traffic is refused);
    - every entry point's host and path are routed by an Ingress rule;
    - the admin credentials' Secret has the declared keys.
    """
    components = {c for obj in objects if (c := _pod_component(obj))}
    named = [
        *(
            (f"network.ingress[{i}]", rule.component)
            for i, rule in enumerate(release.network.ingress)
        ),
        *(
            (f"network.egress[{i}]", rule.component)
            for i, rule in enumerate(release.network.egress)
        ),
    ]
    for key, component in named:
        if component not in components:
            yield (
                f"{key}.component",
                f"{component!r} labels no workload's pods "
                f"(the stack's components: {', '.join(sorted(components)) or 'none'})",
            )
    routes = _ingress_routes(objects)
    hosts = {host for host, _ in routes}
    for i, entry in enumerate(release.entry_points):
        # The instance's host is whichever host the prefix completes (hosts are unique).
        served = any(
            host == entry.host_prefix + base and _routed(entry.path, paths)
            for base in hosts
            for host, paths in routes
        )
        if not served:
            yield (
                f"entry_points[{i}]",
                f"no Ingress routes {entry.host_prefix}<host>{entry.path} "
                f"(the Ingress hosts: {', '.join(sorted(hosts)) or 'none'})",
            )
    credentials = release.credentials()
    if credentials is not None:
        secret = next(
            (
                obj
                for obj in objects
                if obj.get("kind") == "Secret" and obj["metadata"]["name"] == credentials.secret
            ),
            None,
        )
        where = (
            "versions.admin_credentials"
            if release.version.admin_credentials is not None
            else "admin_credentials"
        )
        if secret is None:
            yield (f"{where}.secret", f"the stack has no Secret {credentials.secret!r}")
        else:
            keys = {*(secret.get("stringData") or {}), *(secret.get("data") or {})}
            for field_name in ("username_key", "password_key"):
                wanted = getattr(credentials, field_name)
                if wanted not in keys:
                    yield (
                        f"{where}.{field_name}",
                        f"Secret {credentials.secret!r} has no key {wanted!r} "
                        f"(it has: {', '.join(sorted(keys)) or 'none'})",
                    )


def _pod_component(obj: Mapping[str, Any]) -> str | None:
    if obj.get("kind") not in _WORKLOAD_KINDS:
        return None
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    value = labels.get(_COMPONENT)
    return str(value) if value else None


def _ingress_routes(objects: Objects) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(host, [(path, pathType)])`` of every Ingress rule."""
    routes = []
    for obj in objects:
        if obj.get("kind") != "Ingress":
            continue
        for rule in (obj.get("spec") or {}).get("rules") or []:
            paths = ((rule.get("http") or {}).get("paths")) or []
            routes.append(
                (
                    str(rule.get("host", "")),
                    [(str(p.get("path", "/")), str(p.get("pathType", "Prefix"))) for p in paths],
                )
            )
    return routes


def _routed(path: str, paths: list[tuple[str, str]]) -> bool:
    """Whether an Ingress path list serves ``path`` (Prefix matches whole segments)."""
    for prefix, kind in paths:
        if kind == "Exact":
            if path == prefix:
                return True
        elif prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return True
    return False


def _item(where: str, key: str, message: str) -> ErrorItem:
    return ErrorItem(f"{where}: {key}", message)


Problem = tuple[str, str]


def check_versions(definition: ServiceDefinition) -> Iterator[Problem]:
    """Semver, duplicates, pinned images, upgrade ranges and the status rules."""
    parsed: dict[int, Any] = {}
    first: dict[str, int] = {}
    for index, version in enumerate(definition.versions):
        key = f"versions[{index}]"
        try:
            parsed[index] = parse_version(version.version)
        except ControlPlaneError as exc:
            yield f"{key}.version", f"{exc.detail} {exc.hint or ''}".strip()
        if version.version in first:
            yield (
                f"{key}.version",
                f"version {version.version} is declared twice "
                f"(also versions[{first[version.version]}])",
            )
        else:
            first[version.version] = index
        for role, image in version.images.items():
            problem = image_problem(image)
            if problem:
                yield f"{key}.images.{role}", problem
        if version.status != VersionStatus.ACTIVE and version.support_ends is None:
            yield (
                f"{key}.support_ends",
                f"a {version.status.value} version needs support_ends: the date its support "
                "ends (or ended), so that tenants can plan their upgrade",
            )

    reachable: set[int] = set()
    for index, version in enumerate(definition.versions):
        if not version.upgrade_from.strip() or index not in parsed:
            continue
        key = f"versions[{index}].upgrade_from"
        try:
            spec = parse_range(version.upgrade_from)
        except VersionRangeInvalid as exc:
            yield key, f"{exc.detail} {exc.hint or ''}".strip()
            continue
        others = {i: v for i, v in parsed.items() if i != index}
        matched = [i for i, v in others.items() if v in spec]
        not_older = [i for i in matched if others[i] >= parsed[index]]
        if parsed[index] in spec:
            yield key, f"{version.upgrade_from!r} matches {version.version} itself"
        if not_older:
            names = ", ".join(definition.versions[i].version for i in not_older)
            yield (
                key,
                f"{version.upgrade_from!r} matches {names}, not older than {version.version}: "
                "a version can only be reached from older versions",
            )
        if not matched:
            declared = ", ".join(definition.versions[i].version for i in others) or "none"
            yield (
                key,
                f"{version.upgrade_from!r} matches no other declared version of "
                f"{definition.name} (declared: {declared})",
            )
        if version.status != VersionStatus.RETIRED:
            reachable.update(i for i in matched if others[i] < parsed[index])

    for index, version in enumerate(definition.versions):
        if version.status != VersionStatus.ACTIVE and index not in reachable:
            yield (
                f"versions[{index}].status",
                f"{version.version} is {version.status.value} but no newer, non-retired version "
                "upgrades from it: add it to a newer version's upgrade_from, so that its "
                "instances have a way forward",
            )


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or ``None`` when it is."""
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    # A colon before the last '/' belongs to a registry port, not a tag.
    if not name or "/" in tag:
        return f"{image!r} has no tag: pin the version, e.g. {image}:1.2.3"
    if tag == "latest":
        return f"{image!r} uses the moving tag 'latest': pin a version"
    if not tag:
        return f"{image!r} has an empty tag: pin a version"
    return None


def check_plans(definition: ServiceDefinition) -> Iterator[Problem]:
    """Unique plan names; a request never above its limit."""
    first: dict[str, int] = {}
    for index, plan in enumerate(definition.plans):
        if plan.name in first:
            yield (
                f"plans[{index}].name",
                f"plan {plan.name!r} is declared twice (also plans[{first[plan.name]}])",
            )
        else:
            first[plan.name] = index
        for resource in ("cpu", "memory"):
            pair: RequestLimit = getattr(plan, resource)
            if quantity(pair.request) > quantity(pair.limit):
                yield (
                    f"plans[{index}].{resource}.request",
                    f"request {pair.request} is more than the limit {pair.limit}",
                )


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity (as allowed by the catalogue) as a number."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a quantity")
    return Decimal(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


def check_parameters(schema: Mapping[str, Any]) -> Iterator[Problem]:
    """A valid draft 2020-12 schema of type object, usable names, defaults that validate."""
    declared = schema.get("$schema")
    if declared is not None and (
        not isinstance(declared, str) or declared.rstrip("#") != DRAFT_2020_12
    ):
        yield "parameters.$schema", f"must be {DRAFT_2020_12!r} (got {declared!r})"
        return
    try:
        jsonschema_rs.meta.validate(dict(schema))
    except jsonschema_rs.ValidationError as exc:
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.instance_path)
        yield f"parameters{key}", f"not valid JSON Schema: {exc.message}"
        return
    except jsonschema_rs.ReferencingError as exc:
        yield "parameters", f"not valid JSON Schema: {exc}"
        return
    if schema.get("type") != "object":
        yield "parameters.type", "the parameter schema must have type: object"
        return
    yield from _check_names(schema, "parameters")
    yield from _check_required(schema, "parameters")
    document = example_parameters(schema)
    try:
        # Offline: a parameter schema must be self-contained (no remote $ref).
        validator = jsonschema_rs.validator_for(dict(schema), validate_formats=True, offline=True)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        yield "parameters", f"cannot be compiled: {first_line}"
        return
    for error in validator.iter_errors(document):
        if error.kind.name == "required":
            continue  # a required parameter without default or example: reported above
        key = "parameters" + "".join(f".properties.{p}" for p in error.instance_path)
        yield f"{key}.default", f"the default does not match the schema: {error.message}"


def _subschemas(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for name, sub in properties.items():
        if isinstance(sub, Mapping):
            yield f"{path}.properties.{name}", sub
            yield from _subschemas(sub, f"{path}.properties.{name}")


def _check_names(schema: Mapping[str, Any], path: str) -> Iterator[Problem]:
    for sub_path, _sub in _subschemas(schema, path):
        name = sub_path.rsplit(".", 1)[1]
        if not PARAMETER_NAME.fullmatch(name):
            yield (
                sub_path,
                f"parameter name {name!r} must be letters, digits and '_' and not start with a "
                "digit (templates use it as params.<name>)",
            )


def _check_required(schema: Mapping[str, Any], path: str) -> Iterator[Problem]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for name in schema.get("required", []):
        sub = properties.get(name)
        if isinstance(sub, Mapping) and "default" not in sub and not sub.get("examples"):
            if sub.get("type") == "object" and "properties" in sub:
                continue  # filled from its own properties' defaults
            yield (
                f"{path}.properties.{name}",
                "a required parameter without a default needs `examples` (its first example "
                "is used to render and check the catalogue)",
            )
    for name, sub in properties.items():
        if isinstance(sub, Mapping):
            yield from _check_required(sub, f"{path}.properties.{name}")


def example_parameters(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a catalogue check renders with: every default, and the first example
    of each required parameter that has no default."""
    out: dict[str, Any] = {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return out
    required = set(schema.get("required", []))
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        if "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        elif name in required and sub.get("examples"):
            out[name] = copy.deepcopy(sub["examples"][0])
        elif name in required and isinstance(sub.get("properties"), Mapping):
            out[name] = example_parameters(sub)
        if isinstance(out.get(name), dict) and isinstance(sub.get("properties"), Mapping):
            out[name] = {**example_parameters(sub), **out[name]}
    return out


def check_shared_cost(definition: ServiceDefinition) -> Iterator[Problem]:
    cost = definition.shared_cost
    if cost is None:
        return
    if cost.key == SharingKey.MIXED and cost.equal_percent is None:
        yield (
            "shared_cost.equal_percent",
            "the mixed key needs equal_percent: the percentage split equally (the rest goes "
            "by inhabitants)",
        )
    if cost.key != SharingKey.MIXED and cost.equal_percent is not None:
        yield (
            "shared_cost.equal_percent",
            f"equal_percent only applies to the mixed key (this one is {cost.key.value!r})",
        )
