"""Read the catalogue folders into definitions and releases.

This is the only place that reads catalogue and template files; everything downstream
works on :class:`ServiceDefinition` and :class:`ServiceRelease` values. Checking goes
further in ``catalog.validation`` (semantic rules, rendering every version × plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml_rs
from pydantic import ValidationError

from controlplane import resources
from controlplane.catalog.errors import CatalogInvalid, ServiceNotInCatalog
from controlplane.catalog.models import ServiceDefinition, ServiceRelease, TemplateBundle
from controlplane.errors import ErrorItem

TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2", ".yaml", ".yml")


@dataclass(frozen=True)
class Catalog:
    """The service definitions of a catalogue folder and the template folder they use."""

    services: dict[str, ServiceDefinition]
    templates_dir: Path
    catalog_dir: Path

    def definition(self, name: str) -> ServiceDefinition:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise ServiceNotInCatalog(
                f"There is no service {name!r} in {self.catalog_dir}.",
                hint=f"Known services: {known}.",
            ) from None

    def release(self, name: str, version: str | None = None) -> ServiceRelease:
        """Freeze one version (default: the newest active one) into a release."""
        definition = self.definition(name)
        spec = definition.version(version) if version else newest_active(definition)
        if spec is None:
            versions = ", ".join(v.version for v in definition.versions)
            raise ServiceNotInCatalog(
                f"Service {name!r} has no version {version!r}.", hint=f"Versions: {versions}."
            )
        bundle = read_bundle(self.templates_dir / spec.templates)
        return ServiceRelease(
            name=definition.name,
            title=definition.title,
            description=definition.description,
            category=definition.category,
            owner=definition.owner,
            version=spec,
            plans=definition.plans,
            parameters=definition.parameters,
            network=definition.network,
            shared_cost=definition.shared_cost,
            bundle=bundle,
        )

    def releases(self) -> list[ServiceRelease]:
        return [
            self.release(d.name, v.version)
            for d in sorted(self.services.values(), key=lambda d: d.name)
            for v in d.versions
        ]


def newest_active(definition: ServiceDefinition) -> Any:
    from semver import Version

    usable = [v for v in definition.versions if v.status != "retired"] or definition.versions
    return max(usable, key=lambda v: Version.parse(v.version))


def read_bundle(folder: Path) -> TemplateBundle:
    """All template files below ``folder``, by path relative to it."""
    if not folder.is_dir():
        raise CatalogInvalid(
            f"Template folder {folder} does not exist.",
            hint="Create it or fix the version's `templates` key.",
        )
    files = {
        str(path.relative_to(folder)): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name.endswith(TEMPLATE_SUFFIXES)
    }
    return TemplateBundle(files=files)


def parse_definition(path: Path) -> ServiceDefinition:
    """Parse and type-check one catalogue file; errors name the file and key path."""
    try:
        raw = yaml_rs.loads(
            path.read_text(encoding="utf-8"),
            parse_datetime=False,
            duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
        )
    except yaml_rs.YAMLDecodeError as exc:
        raise CatalogInvalid(
            f"{path} is not valid YAML.", errors=[ErrorItem(str(path), str(exc))]
        ) from exc
    if not isinstance(raw, dict):
        raise CatalogInvalid(
            f"{path} must be one YAML mapping describing one service.",
            errors=[ErrorItem(str(path), "expected a mapping at the top level")],
        )
    try:
        return ServiceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise CatalogInvalid(
            f"{path} is not a valid catalogue file.",
            errors=[
                ErrorItem(f"{path}: {_key_path(err['loc'])}", err["msg"]) for err in exc.errors()
            ],
        ) from exc


def load_catalog(catalog_dir: Path | None = None, templates_dir: Path | None = None) -> Catalog:
    """Load every ``*.yaml`` file of the catalogue folder (default: the shipped catalogue)."""
    cdir = resources.catalog_dir(catalog_dir)
    tdir = resources.templates_dir(templates_dir)
    services: dict[str, ServiceDefinition] = {}
    errors: list[ErrorItem] = []
    for path in sorted(cdir.glob("*.yaml")):
        try:
            definition = parse_definition(path)
        except CatalogInvalid as exc:
            errors.extend(exc.errors)
            continue
        services[definition.name] = definition
    if errors:
        raise CatalogInvalid(f"The catalogue in {cdir} has errors.", errors=errors)
    return Catalog(services=services, templates_dir=tdir, catalog_dir=cdir)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
