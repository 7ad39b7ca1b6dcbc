"""The JSON Schema of a catalogue file, generated from :class:`ServiceDefinition`.

The model in ``catalog.models`` is the one truth of the file format; this module turns it
into ``catalog/catalog.schema.json`` so that editors (the YAML language server) and tools
outside Python can check a catalogue file while it is written. The file is checked in and
a test fails when it is out of date; regenerate it with
``controlplane catalog schema --write``.

The schema checks the shape only; the rules that need more than one key or the template
folder (semver ranges, duplicate versions, rendering) are ``catalog.validation``.

This module must not know about templates, rendering or the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controlplane import resources
from controlplane.catalog.loading import SCHEMA_FILE
from controlplane.catalog.models import ServiceDefinition

SCHEMA_ID = "https://city-platform.be/schemas/catalog.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def catalog_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one catalogue file."""
    generated = ServiceDefinition.model_json_schema(mode="validation")
    properties = dict(generated["properties"])
    # The parameters are themselves a JSON Schema: let editors check them as one.
    properties["parameters"] = {
        "$ref": DRAFT,
        "title": "Parameters",
        "description": "JSON Schema (draft 2020-12) of the instance parameters, type object, "
        "with a default for every optional parameter.",
    }
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        **{key: value for key, value in generated.items() if key != "properties"},
        "title": "City Platform catalogue file",
        "description": "One service of the City Platform catalogue (catalog/<name>.yaml). "
        "See docs/catalog.md. Generated from controlplane.catalog.models; do not edit.",
        "properties": properties,
    }


def render_file_schema() -> str:
    """The text of ``catalog.schema.json``: stable key order, two-space indent, final newline."""
    return json.dumps(catalog_file_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_path(catalog_dir: Path | None = None) -> Path:
    return resources.catalog_dir(catalog_dir) / SCHEMA_FILE


def write_file_schema(catalog_dir: Path | None = None) -> Path:
    """(Re)write ``catalog.schema.json`` in the catalogue folder; returns its path."""
    path = schema_path(catalog_dir)
    path.write_text(render_file_schema(), encoding="utf-8")
    return path
