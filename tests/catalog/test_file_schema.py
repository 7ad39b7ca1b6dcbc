"""catalog/catalog.schema.json: generated from the model, checked in, up to date."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
import yaml_rs

from controlplane import resources
from controlplane.catalog.file_schema import catalog_file_schema, render_file_schema, schema_path
from controlplane.catalog.loading import service_files


def test_the_checked_in_schema_is_up_to_date() -> None:
    path = schema_path()
    assert path.is_file(), "run `controlplane catalog schema --write`"
    assert path.read_text(encoding="utf-8") == render_file_schema(), (
        "catalog/catalog.schema.json is out of date: run `controlplane catalog schema --write`"
    )


@pytest.mark.parametrize("path", service_files(resources.catalog_dir()), ids=lambda p: p.name)
def test_every_shipped_file_matches_the_schema(path: Path) -> None:
    validator = jsonschema_rs.validator_for(catalog_file_schema())
    document = yaml_rs.loads(path.read_text(encoding="utf-8"), parse_datetime=False)
    assert [e.message for e in validator.iter_errors(document)] == []


def test_the_schema_refuses_unknown_keys_and_bad_parameter_schemas() -> None:
    validator = jsonschema_rs.validator_for(catalog_file_schema())
    path = service_files(resources.catalog_dir())[0]
    document = yaml_rs.loads(path.read_text(encoding="utf-8"), parse_datetime=False)
    assert isinstance(document, dict)
    assert validator.is_valid(document)
    assert not validator.is_valid({**document, "colour": "blue"})
    assert not validator.is_valid({**document, "parameters": {"type": "objekt"}})


def test_the_schema_is_stable_json() -> None:
    assert json.loads(render_file_schema()) == catalog_file_schema()
    assert render_file_schema() == render_file_schema()
