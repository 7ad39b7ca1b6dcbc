"""Read the catalogue folders into definitions and releases.

This is the only place that reads catalogue and template files; everything downstream
works on :class:`ServiceDefinition` and :class:`ServiceRelease` values. Every error names
the file as the catalogue author sees it (``catalog/keycloak.yaml``) and the key path
inside it (``plans[1].cpu.limit``), so that it can be fixed without guessing. Checking goes
further in ``catalog.validation`` (semantic rules, rendering every version and plan).

This module must not know about Jinja2, Kubernetes or the database.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml_rs
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from controlplane import resources
from controlplane.catalog.errors import CatalogInvalid, ServiceNotInCatalog
from controlplane.catalog.models import (
    CONTAINER_PATH,
    CREDENTIAL_NAME,
    DNS_LABEL,
    ENV_NAME,
    HOST_PREFIX,
    QUANTITY,
    SECRET_KEY,
    SEMVER,
    URL_PATH,
    ImageFactsSheet,
    ServiceDefinition,
    ServiceRelease,
    ServiceVersion,
    TemplateBundle,
    VersionStatus,
)
from controlplane.catalog.versions import parse_version
from controlplane.errors import ErrorItem

#: Files of a template folder that are templates (rendered in file-name order).
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2", ".yaml", ".yml")
#: Files of a catalogue folder that are service definitions, one service per file.
SERVICE_SUFFIXES = (".yaml", ".yml")
#: The JSON Schema of a catalogue file, kept beside the service files (not a service).
SCHEMA_FILE = "catalog.schema.json"
#: The facts sheet of images that several services use (official database and cache
#: images rendered by shared components), beside the service files (not a service).
SHARED_FACTS_FILE = "_images.yaml"

# Friendlier words for the patterns of models.py than "String should match pattern '^…$'".
_PATTERN_MESSAGES = {
    SEMVER: "is not a semantic version: write MAJOR.MINOR.PATCH, e.g. 25.0.6 or 3.0.0-rc.1",
    QUANTITY: "is not a Kubernetes quantity: write e.g. 250m, 1, 512Mi or 10Gi",
    DNS_LABEL: "is not a DNS label: lowercase letters, digits and '-', at most 63 characters",
    HOST_PREFIX: "is not a host prefix: DNS labels each followed by a dot, e.g. 'api.', or empty",
    URL_PATH: "is not a URL path: start with '/', then letters, digits and . _ ~ / % -",
    SECRET_KEY: "is not a Secret key: letters, digits, '-', '_' and '.'",
    CREDENTIAL_NAME: "is not a credential name: a lower-case letter, then letters, digits, '_'",
    CONTAINER_PATH: "is not an absolute container path: start with '/', then letters, digits "
    "and . _ / -",
    ENV_NAME: "is not an environment variable name: letters, digits, '_', '.' and '-', not "
    "starting with a digit",
}
_YAML_POSITION = re.compile(r"line (\d+), column (\d+)")


@dataclass(frozen=True)
class Catalog:
    """The service definitions of a catalogue folder and the template folder they use."""

    services: dict[str, ServiceDefinition]
    templates_dir: Path
    catalog_dir: Path
    #: The file each service was read from.
    files: dict[str, Path] = field(default_factory=dict)
    #: The shared facts sheet (``_images.yaml``), by image repository.
    shared_facts: ImageFactsSheet = field(default_factory=dict)

    def location(self, name: str) -> str:
        """How errors name the file of service ``name`` (``catalog/keycloak.yaml``)."""
        path = self.files.get(name, self.catalog_dir / f"{name}.yaml")
        return display_path(path, self.catalog_dir)

    def definition(self, name: str) -> ServiceDefinition:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise ServiceNotInCatalog(
                f"There is no service {name!r} in {self.catalog_dir}.",
                hint=f"Known services: {known}.",
            ) from None

    def version(self, name: str, version: str | None = None) -> ServiceVersion:
        """One version of a service (default: what new instances get, :func:`default_version`)."""
        definition = self.definition(name)
        if version is None:
            return default_version(definition)
        spec = definition.version(version)
        if spec is None:
            versions = ", ".join(v.version for v in definition.versions)
            raise ServiceNotInCatalog(
                f"Service {name!r} has no version {version!r}.", hint=f"Known versions: {versions}."
            )
        return spec

    def release(self, name: str, version: str | None = None) -> ServiceRelease:
        """Freeze one version (default: the newest active one) into a release."""
        definition = self.definition(name)
        spec = self.version(name, version)
        index = definition.versions.index(spec)
        where = f"{self.location(name)}: versions[{index}].templates"
        bundle = read_bundle(
            template_folder(self.templates_dir, spec.templates, location=where),
            location=where,
            components=self.templates_dir / COMPONENTS_FOLDER,
        )
        return definition.release(spec, bundle)

    def releases(self) -> list[ServiceRelease]:
        return [
            self.release(d.name, v.version)
            for d in sorted(self.services.values(), key=lambda d: d.name)
            for v in d.versions
        ]


def default_version(definition: ServiceDefinition) -> ServiceVersion:
    """The version new instances get: the newest active one, else the newest deprecated one.

    Only when every version is retired (which validation refuses) is it the newest of all.
    """
    for wanted in (VersionStatus.ACTIVE, VersionStatus.DEPRECATED, None):
        usable = [v for v in definition.versions if wanted is None or v.status == wanted]
        if usable:
            return max(usable, key=lambda v: parse_version(v.version))
    raise AssertionError("a ServiceDefinition has at least one version")  # pragma: no cover


#: The name this function had before; kept for callers written against it.
newest_active = default_version


def display_path(path: Path, root: Path) -> str:
    """``<root folder name>/<path inside it>``: short, and the same on every machine."""
    try:
        return f"{root.name}/{path.relative_to(root).as_posix()}"
    except ValueError:
        return str(path)


def service_files(catalog_dir: Path) -> list[Path]:
    """The service files of a catalogue folder, by name (not the schema, not dotfiles)."""
    return sorted(
        path
        for path in catalog_dir.iterdir()
        if path.is_file()
        and path.name.endswith(SERVICE_SUFFIXES)
        and not path.name.startswith((".", "_"))
    )


def read_bundle(
    folder: Path, *, location: str = "", components: Path | None = None
) -> TemplateBundle:
    """All template files below ``folder``, by path relative to it, and the shared
    components they use (from ``components``, as ``_components/<name>.yaml.j2``).

    ``location`` is where the folder is named (``catalog/x.yaml: versions[0].templates``).
    A release carries the components it was published with, so it renders the same
    whatever happens to ``templates/_components/`` later.
    """
    shown = f"{folder.parent.name}/{folder.name}" if folder.parent.name else str(folder)
    if not folder.is_dir():
        raise CatalogInvalid(
            f"Template folder {folder} does not exist.",
            errors=[ErrorItem(location or str(folder), f"template folder {folder} does not exist")],
            hint="Create it or fix the version's `templates` key.",
        )
    files: dict[str, str] = {}
    for file in sorted(folder.rglob("*")):
        if not (file.is_file() and file.name.endswith(TEMPLATE_SUFFIXES)):
            continue
        relative = file.relative_to(folder).as_posix()
        try:
            files[relative] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogInvalid(
                f"Template {folder / relative} is not UTF-8 text.",
                errors=[ErrorItem(f"{shown}/{relative}", "not UTF-8 text")],
            ) from exc
    if not files:
        raise CatalogInvalid(
            f"Template folder {folder} has no templates.",
            errors=[
                ErrorItem(
                    location or str(folder), f"template folder {folder} has no *.yaml.j2 files"
                )
            ],
        )
    if components is not None:
        base = components.parent
        named = folder.relative_to(base) if folder.is_relative_to(base) else Path(folder.name)
        files.update(_used_components(files, components, named.as_posix()))
    return TemplateBundle(files=files)


#: ``component("name", …)`` in a template: a use of ``templates/_components/name.yaml.j2``.
_COMPONENT_USE = re.compile(r"""\bcomponent\(\s*["']([a-z0-9][a-z0-9-]*)["']""")
COMPONENTS_FOLDER = "_components"


def _used_components(files: dict[str, str], components: Path, folder: str) -> dict[str, str]:
    """The component files the templates use, and those the components use in turn."""
    found: dict[str, str] = {}
    pending = [(name, text) for name, text in files.items()]
    while pending:
        user, text = pending.pop()
        for name in _COMPONENT_USE.findall(text):
            key = f"{COMPONENTS_FOLDER}/{name}.yaml.j2"
            if key in found:
                continue
            path = components / f"{name}.yaml.j2"
            if not path.is_file():
                known = sorted(
                    p.name.removesuffix(".yaml.j2") for p in components.glob("*.yaml.j2")
                )
                where = user if user.startswith(COMPONENTS_FOLDER) else f"{folder}/{user}"
                raise CatalogInvalid(
                    f"Template {where} uses the component {name!r}, which does not exist.",
                    errors=[
                        ErrorItem(
                            f"templates/{where}",
                            f"no component {name!r} in templates/{COMPONENTS_FOLDER}/ "
                            f"(there are: {', '.join(known) or 'none'})",
                        )
                    ],
                )
            found[key] = path.read_text(encoding="utf-8")
            pending.append((key, found[key]))
    return found


def template_folder(templates_dir: Path, folder: str, *, location: str = "") -> Path:
    """``templates_dir/folder``, refusing a folder that climbs out of ``templates_dir``."""
    path = (templates_dir / folder).resolve()
    if not path.is_relative_to(templates_dir.resolve()):
        raise CatalogInvalid(
            f"Template folder {folder!r} is outside {templates_dir}.",
            errors=[ErrorItem(location, f"{folder!r} must stay inside the templates folder")],
        )
    return templates_dir / folder


def parse_definition(path: Path, *, location: str | None = None) -> ServiceDefinition:
    """Parse and type-check one catalogue file; errors name the file and key path.

    ``location`` is how errors name the file (default: the path as given).
    """
    where = location or str(path)
    raw = _read_mapping(path, where, "one YAML mapping describing one service")
    try:
        return ServiceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(where, "catalogue file", exc) from exc


class _SharedFacts(BaseModel):
    model_config = {"extra": "forbid"}

    facts: ImageFactsSheet


def parse_shared_facts(path: Path, *, location: str | None = None) -> ImageFactsSheet:
    """Parse the shared facts sheet (``facts:`` by image repository, nothing else)."""
    where = location or str(path)
    raw = _read_mapping(path, where, "one YAML mapping with the key 'facts'")
    try:
        return _SharedFacts.model_validate(raw).facts
    except ValidationError as exc:
        raise _invalid(where, "facts sheet", exc) from exc


def _read_mapping(path: Path, where: str, expected: str) -> dict[str, Any]:
    try:
        raw = yaml_rs.loads(
            path.read_text(encoding="utf-8"),
            parse_datetime=False,
            duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
        )
    except UnicodeDecodeError as exc:
        raise CatalogInvalid(
            f"{where} is not UTF-8 text.", errors=[ErrorItem(where, "not UTF-8 text")]
        ) from exc
    except yaml_rs.YAMLDecodeError as exc:
        raise CatalogInvalid(
            f"{where} is not valid YAML.", errors=[_yaml_error(where, exc)]
        ) from exc
    if not isinstance(raw, dict):
        raise CatalogInvalid(
            f"{where} must be {expected}.",
            errors=[ErrorItem(where, "expected one mapping (key: value) at the top level")],
        )
    return raw


def _invalid(where: str, what: str, exc: ValidationError) -> CatalogInvalid:
    return CatalogInvalid(
        f"{where} is not a valid {what}.",
        errors=[
            ErrorItem(f"{where}: {key_path(err['loc'])}", _message(err)) for err in exc.errors()
        ],
        hint="docs/catalog.md lists every key with its type.",
    )


def read_catalog(
    catalog_dir: Path | None = None, templates_dir: Path | None = None
) -> tuple[Catalog, list[ErrorItem]]:
    """Every service file that parses, and the errors of those that do not.

    Validation uses this to go on past a broken file; :func:`load_catalog` refuses any.
    """
    cdir = resources.catalog_dir(catalog_dir)
    tdir = resources.templates_dir(templates_dir)
    if not cdir.is_dir():
        raise CatalogInvalid(
            f"The catalogue folder {cdir} does not exist.",
            errors=[ErrorItem(str(cdir), "no such folder")],
        )
    services: dict[str, ServiceDefinition] = {}
    files: dict[str, Path] = {}
    errors: list[ErrorItem] = []
    for path in service_files(cdir):
        where = display_path(path, cdir)
        try:
            definition = parse_definition(path, location=where)
        except CatalogInvalid as exc:
            errors.extend(exc.errors)
            continue
        if definition.name in services:
            errors.append(
                ErrorItem(
                    f"{where}: name",
                    f"service {definition.name!r} is already defined in "
                    f"{display_path(files[definition.name], cdir)}",
                )
            )
            continue
        services[definition.name] = definition
        files[definition.name] = path
    shared: ImageFactsSheet = {}
    shared_path = cdir / SHARED_FACTS_FILE
    if shared_path.is_file():
        try:
            shared = parse_shared_facts(shared_path, location=display_path(shared_path, cdir))
        except CatalogInvalid as exc:
            errors.extend(exc.errors)
    catalog = Catalog(
        services=services, templates_dir=tdir, catalog_dir=cdir, files=files, shared_facts=shared
    )
    return catalog, errors


def load_catalog(catalog_dir: Path | None = None, templates_dir: Path | None = None) -> Catalog:
    """Load every service file of the catalogue folder (default: the shipped catalogue).

    Raises :class:`CatalogInvalid` with every file's errors if any file does not parse.
    """
    catalog, errors = read_catalog(catalog_dir, templates_dir)
    if errors:
        raise CatalogInvalid(
            f"The catalogue in {catalog.catalog_dir} has errors.",
            errors=errors,
            hint="Run `controlplane catalog validate` for the full check.",
        )
    return catalog


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("plans", 1, "cpu", "limit")`` → ``plans[1].cpu.limit``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _yaml_error(where: str, exc: yaml_rs.YAMLDecodeError) -> ErrorItem:
    # yaml-rs puts the position in the first line and a source excerpt with a caret
    # after it; the location gets the position, the message the last (explaining) line.
    text = str(exc).strip()
    position = _YAML_POSITION.search(text)
    lines = [line for line in text.splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else text
    if position:
        return ErrorItem(f"{where}:{position.group(1)}:{position.group(2)}", reason)
    return ErrorItem(where, reason)


def _message(err: ErrorDetails) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        known = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {err['loc'][-1]!r}{known}"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        pattern = str((err.get("ctx") or {}).get("pattern"))
        # Never a regex in a message: the model's own words, else a plain sentence.
        words = _PATTERN_MESSAGES.get(pattern, "has characters or a form not allowed here")
        return f"{value!r} {words}"
    message = err["msg"]
    if isinstance(value, str | int | float | bool) or value is None:
        message += f" (got {value!r})"
    elif isinstance(value, list | dict):
        message += f" (got a {'list' if isinstance(value, list) else 'mapping'})"
    return message


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a mapping at ``loc`` of a catalogue file may have (for "unknown key")."""
    current: Any = ServiceDefinition
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        else:
            args = typing.get_args(current)
            if not args:
                return []
            current = args[-1]  # list[X] → X, dict[str, X] → X
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, …]`` and ``X | None`` → ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = rest[0] if len(rest) == 1 else annotation
            if len(rest) != 1:
                return annotation
        else:
            return annotation
