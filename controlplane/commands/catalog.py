"""`controlplane catalog validate | render | schema`: offline checks of the catalogue files.

These commands need no database, no cluster and no running server: they read the
catalogue and template folders (the shipped ones unless told otherwise), render with the
real renderer and print what they find. They are what a catalogue author runs before a
merge request and what CI runs on every change of ``catalog/`` or ``templates/``.

This module is an adapter: it parses options, calls the domain (``catalog``,
``rendering``) and prints. It must not hold catalogue rules of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml_rs
from rich.console import Console
from rich.text import Text

from controlplane.catalog.errors import CatalogInvalid, ServiceNotInCatalog
from controlplane.catalog.file_schema import render_file_schema, schema_path
from controlplane.catalog.loading import Catalog, read_catalog
from controlplane.catalog.models import Plan, ServiceRelease
from controlplane.catalog.validation import check_catalog
from controlplane.errors import ControlPlaneError, ErrorItem
from controlplane.rendering import InstanceRef, ParameterInvalid, Renderer, TenantRef
from controlplane.rendering.catalog_checks import (
    OFFLINE_SECRET,
    offline_instance_id,
    stack_check,
    update_check,
)
from controlplane.settings import Settings

app = typer.Typer(help="Check and render the service catalogue offline.", no_args_is_help=True)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


CatalogDir = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalogue folder (default: CONTROLPLANE_CATALOG_DIR or the shipped catalogue).",
        file_okay=False,
    ),
]
TemplatesDir = Annotated[
    Path | None,
    typer.Option(
        "--templates",
        help="Templates folder (default: the 'templates' folder beside the catalogue folder "
        "if there is one, else the shipped templates).",
        file_okay=False,
    ),
]
KubernetesVersion = Annotated[
    str | None,
    typer.Option(
        "--kubernetes-version",
        help="Kubernetes minor whose schemas the objects must satisfy "
        "(default: CONTROLPLANE_KUBERNETES_VERSION or 1.33).",
    ),
]


@app.command()
def validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="Catalogue folder (default: the shipped catalogue).", file_okay=False),
    ] = None,
    templates: TemplatesDir = None,
    kubernetes_version: KubernetesVersion = None,
) -> None:
    """Check every catalogue file and template, render every version x plan, compare the
    renders of every plan change and upgrade; list every error."""
    settings = Settings()
    catalog_dir, templates_dir = _folders(path, templates, settings)
    version = kubernetes_version or settings.kubernetes_version
    try:
        check = stack_check(version)
    except ControlPlaneError as exc:
        _fail(exc)
    report = check_catalog(catalog_dir, templates_dir, check_stack=check, check_update=update_check)
    if report.errors:
        for item in report.errors:
            out.print(Text.assemble((item.location, "bold"), ": ", item.message))
        count = len(report.errors)
        err.print(
            Text(
                f"{count} error{'s' if count != 1 else ''} in the catalogue.",
                style="bold red",
            )
        )
        raise typer.Exit(1)
    out.print(
        f"{report.services} service{'s' if report.services != 1 else ''}, "
        f"{report.versions} version{'s' if report.versions != 1 else ''}, "
        f"{report.stacks} stack{'s' if report.stacks != 1 else ''} rendered and checked, "
        f"{report.plan_changes} plan change{'s' if report.plan_changes != 1 else ''} and "
        f"{report.upgrades} upgrade{'s' if report.upgrades != 1 else ''} compared "
        f"(Kubernetes {version})."
    )


@app.command()
def render(
    service: Annotated[str, typer.Argument(help="Service name, as in catalog/<name>.yaml.")],
    version: Annotated[
        str | None,
        typer.Option("--version", help="Service version (default: the newest active one)."),
    ] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="Plan name (default: the first plan).")
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant slug the stack is rendered for.")
    ] = "demo",
    instance: Annotated[
        str | None, typer.Option("--instance", help="Instance name (default: the service name).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A parameter as key=value (nested: a.b=value); repeat for more. The value is "
            "typed by the parameter schema.",
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("-o", "--output", help="yaml (documents) or json (one list).")
    ] = OutputFormat.yaml,
    catalog_dir: CatalogDir = None,
    templates: TemplatesDir = None,
    kubernetes_version: KubernetesVersion = None,
) -> None:
    """Render one service's whole stack (namespace baseline included) and print it."""
    settings = Settings()
    cdir, tdir = _folders(catalog_dir, templates, settings)
    try:
        catalog = _catalog_with(service, cdir, tdir)
        release = catalog.release(service, version)
        chosen = _plan(release, plan)
        parameters = parse_sets(set_ or [], release.parameters)
        secret = settings.server_secret.get_secret_value().encode()
        renderer = Renderer(
            server_secret=secret or OFFLINE_SECRET,
            kubernetes_version=kubernetes_version or settings.kubernetes_version,
        )
        name = instance or service
        stack = renderer.render(
            release,
            plan=chosen.name,
            tenant=TenantRef(slug=tenant, name=tenant.replace("-", " ").title(), nis_code="00000"),
            instance=InstanceRef(name=name, id=offline_instance_id(tenant, name)),
            parameters=parameters,
        )
    except ControlPlaneError as exc:
        _fail(exc)
    if release.version.status != "active":
        err.print(
            f"warning: {service} {release.version.version} is {release.version.status}.",
            style="yellow",
        )
    if not secret and any(obj.get("kind") == "Secret" for obj in stack.objects):
        err.print(
            "warning: the Secret values are derived from the public offline-render secret: "
            "they are NOT production credentials. Set CONTROLPLANE_SERVER_SECRET to derive "
            "the real ones.",
            style="yellow",
        )
    typer.echo(format_objects(stack.objects, output), nl=False)


@app.command()
def schema(
    path: Annotated[
        Path | None,
        typer.Argument(help="Catalogue folder (default: the shipped catalogue).", file_okay=False),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write catalog.schema.json into the folder.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if catalog.schema.json is out of date.")
    ] = False,
) -> None:
    """Print (or --write, or --check) the JSON Schema of a catalogue file."""
    text = render_file_schema()
    target = schema_path(path)
    if write:
        target.write_text(text, encoding="utf-8")
        err.print(f"wrote {target}")
    elif check:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            err.print(
                f"{target} is out of date: run `controlplane catalog schema --write`.",
                style="bold red",
            )
            raise typer.Exit(1)
        err.print(f"{target} is up to date.")
    else:
        typer.echo(text, nl=False)


def parse_sets(values: list[str], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` → ``{"a": {"b": 1}, "c": "x"}``, typed by the parameter schema.

    Raises :class:`ParameterInvalid` naming the parameter for an unknown name or a value
    that is not of the parameter's type; the renderer then checks the schema's rules.
    """
    result: dict[str, Any] = {}
    errors: list[ErrorItem] = []
    for raw in values:
        key, sep, text = raw.partition("=")
        if not sep or not key.strip():
            errors.append(ErrorItem(f"--set {raw}", "expected key=value, e.g. log_level=DEBUG"))
            continue
        parts = key.strip().split(".")
        where = "parameters." + ".".join(parts)
        sub: Mapping[str, Any] = schema
        for depth, part in enumerate(parts):
            properties = sub.get("properties")
            if not isinstance(properties, Mapping) or part not in properties:
                known = sorted(properties) if isinstance(properties, Mapping) else []
                parent = ".".join(parts[:depth]) or "the service"
                errors.append(
                    ErrorItem(
                        where,
                        f"unknown parameter (parameters of {parent}: {', '.join(known) or 'none'})",
                    )
                )
                break
            sub = properties[part]
        else:
            try:
                value = typed_value(text, sub)
            except ValueError as exc:
                errors.append(ErrorItem(where, str(exc)))
                continue
            target = result
            for part in parts[:-1]:
                nested = target.setdefault(part, {})
                if not isinstance(nested, dict):
                    errors.append(ErrorItem(where, f"{part} is already set to a plain value"))
                    break
                target = nested
            else:
                target[parts[-1]] = value
    if errors:
        raise ParameterInvalid("Some --set values are not valid parameters.", errors=errors)
    return result


def typed_value(text: str, schema: Mapping[str, Any]) -> Any:
    """The value of ``--set`` text for a parameter of this schema (ValueError if it can't be)."""
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    if "null" in types and text == "null":
        return None
    for kind in types:
        if kind == "null":
            continue
        if kind == "string":
            return text
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"must be an integer (got {text!r})") from None
        if kind == "number":
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"must be a number (got {text!r})") from None
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0"):
                return False
            raise ValueError(f"must be true or false (got {text!r})")
        if kind in ("array", "object"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"must be a JSON {kind} (got {text!r})") from None
    # No usable type: JSON if it reads as JSON, else the text itself.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def format_objects(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], fmt: str) -> str:
    """One JSON list, or one YAML document per object (each starting with ``---``)."""
    if fmt == OutputFormat.json:
        return json.dumps(list(objects), indent=2, ensure_ascii=False) + "\n"
    documents = []
    for obj in objects:
        text = yaml_rs.dumps(obj).strip("\n")
        documents.append(text if text.startswith("---") else f"---\n{text}")
    return "\n".join(documents) + "\n"


def _folders(
    catalog_dir: Path | None, templates: Path | None, settings: Settings
) -> tuple[Path | None, Path | None]:
    cdir = catalog_dir or settings.catalog_dir
    tdir = templates or settings.templates_dir
    if tdir is None and catalog_dir is not None and (catalog_dir.parent / "templates").is_dir():
        # A catalogue folder in a checkout has its templates beside it.
        tdir = catalog_dir.parent / "templates"
    return cdir, tdir


def _catalog_with(service: str, cdir: Path | None, tdir: Path | None) -> Catalog:
    catalog, errors = read_catalog(cdir, tdir)
    if service not in catalog.services and errors:
        # The service may be in a file that does not parse: show why.
        raise CatalogInvalid(
            f"Cannot render {service!r}: the catalogue has errors.",
            errors=errors,
            hint="Run `controlplane catalog validate` for the full check.",
        )
    return catalog


def _plan(release: ServiceRelease, plan: str | None) -> Plan:
    if plan is None:
        return release.plans[0]
    chosen = release.plan(plan)
    if chosen is None:
        raise ServiceNotInCatalog(
            f"Service {release.name!r} has no plan {plan!r}.",
            hint=f"Known plans: {', '.join(p.name for p in release.plans)}.",
        )
    return chosen


def _fail(exc: ControlPlaneError) -> NoReturn:
    err.print(Text(f"error: {exc.detail}", style="bold red"))
    for item in exc.errors:
        err.print(Text.assemble("  ", (item.location, "bold"), ": ", item.message))
    if exc.hint:
        err.print(Text(f"hint: {exc.hint}"))
    raise typer.Exit(1)
