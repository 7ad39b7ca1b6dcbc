"""values.yaml and values.schema.json agree, every key is documented, the schema is strict.

These checks read the files only (no Helm), so they run everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import yaml

from tests.helm.conftest import CHART

VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
#: Kubernetes objects passed through to the pod spec as they are (the API server validates them).
PASS_THROUGH = {"nodeAffinity", "podAffinity", "podAntiAffinity"}


def test_every_key_has_a_doc_comment() -> None:
    lines = VALUES_TEXT.splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\s*[A-Za-z][\w-]*:", line):
            continue
        above = lines[number - 1].strip() if number else ""
        opens_a_section = line.rstrip().endswith(":")
        # A section's keys carry the comments; a leaf needs its own "# --" line.
        if not above.startswith("# --") and not opens_a_section:
            undocumented.append(f"line {number + 1}: {line.strip()}")
    assert undocumented == []


def test_defaults_match_the_schema() -> None:
    jsonschema_rs.validator_for(SCHEMA).validate(VALUES)


def _objects(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _objects(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _objects(schema["items"], f"{path}[]")


def test_schema_refuses_unknown_keys_everywhere() -> None:
    loose = [
        path
        for path, sub in _objects(SCHEMA, "")
        if path.rsplit(".", 1)[-1] not in PASS_THROUGH and "additionalProperties" not in sub
    ]
    assert loose == []
    for path, sub in _objects(SCHEMA, ""):
        if "properties" in sub:
            assert sub["additionalProperties"] is False, path


def _leaves(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Keys of values.yaml the schema does not describe by name (maps aside)."""
    if not isinstance(value, dict) or "properties" not in schema:
        return
    for key, sub_value in value.items():
        sub = schema["properties"].get(key)
        if sub is None:
            yield f"{path}{key}"
        else:
            yield from _leaves(sub_value, sub, f"{path}{key}.")


def test_schema_and_values_describe_the_same_keys() -> None:
    assert list(_leaves(VALUES, SCHEMA, "")) == []
    assert set(SCHEMA["properties"]) == set(VALUES)


def test_schema_rejects_an_unknown_key_and_a_bad_mode() -> None:
    validator = jsonschema_rs.validator_for(SCHEMA)
    assert not validator.is_valid({**VALUES, "replicas": 3})
    assert not validator.is_valid({**VALUES, "api": {**VALUES["api"], "replica": 3}})
    assert not validator.is_valid({**VALUES, "database": {"mode": "mysql", "url": ""}})
