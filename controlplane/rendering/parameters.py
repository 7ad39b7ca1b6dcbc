"""Parameters of an instance: the schema's defaults applied, then validated.

The parameter schema of a release is JSON Schema (draft 2020-12). Defaults are applied
by walking ``properties`` recursively, so that a template always sees every declared
parameter. Parameters that the schema does not declare are refused ("unknown
parameter") even when the schema forgot ``additionalProperties: false``: a typo in a
parameter name must not be silently ignored. Strings with lone surrogates are refused
because they cannot be written as UTF-8 (not into the database, not into YAML).

Validators are compiled once per schema and cached. Errors name the parameter path
(``parameters.smtp.port``) and the rule it breaks, never echo whole values back.

This module must not know about templates or Kubernetes.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from controlplane.catalog.models import canonical_json
from controlplane.errors import ErrorItem
from controlplane.rendering.errors import ParameterInvalid


def apply_defaults(schema: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` with every missing property that has a default filled in."""
    out = dict(value)
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return out
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        if isinstance(out.get(name), Mapping) and "properties" in sub:
            out[name] = apply_defaults(sub, out[name])
    return out


def _closed(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(item) for key, item in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and "patternProperties" not in out
        and "unevaluatedProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


class ParameterValidators:
    """Compiled validators of parameter schemas, by the schema's canonical JSON."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        # The canonical JSON of a schema, remembered per schema object (kept alive here).
        self._keys: OrderedDict[int, tuple[Mapping[str, Any], str]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, schema: Mapping[str, Any]) -> str:
        hit = self._keys.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        key = canonical_json(schema)
        with self._lock:
            self._keys[id(schema)] = (schema, key)
            while len(self._keys) > self._size * 4:
                self._keys.popitem(last=False)
        return key

    def get(self, schema: Mapping[str, Any]) -> Any:
        key = self._key(schema)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        validator = jsonschema_rs.validator_for(
            _closed(dict(schema)), validate_formats=True, offline=True
        )
        with self._lock:
            self._items[key] = validator
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return validator


def resolve(
    validators: ParameterValidators, schema: Mapping[str, Any], parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults applied and validated; :class:`ParameterInvalid` lists every problem."""
    errors = list(_unencodable(parameters, "parameters"))
    if errors:
        raise ParameterInvalid(
            "Some parameter values contain characters that cannot be stored.",
            errors=errors,
            hint="Remove lone UTF-16 surrogates from the values.",
        )
    resolved = apply_defaults(schema, parameters)
    validator = validators.get(schema)
    for error in validator.iter_errors(resolved):
        errors.extend(_items(error, schema))
    if errors:
        raise ParameterInvalid(
            "The parameters do not match the service's parameter schema.",
            errors=errors,
            hint="`cityctl catalog show <service>` lists the parameters and their rules.",
        )
    return resolved


def _unencodable(value: Any, path: str) -> list[ErrorItem]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [ErrorItem(path, "contains a lone surrogate character, which is not text")]
        return []
    if isinstance(value, Mapping):
        out: list[ErrorItem] = []
        for key, item in value.items():
            out.extend(_unencodable(key, path))
            out.extend(_unencodable(item, f"{path}.{key}"))
        return out
    if isinstance(value, list | tuple):
        return [e for i, item in enumerate(value) for e in _unencodable(item, f"{path}[{i}]")]
    return []


def _path(parts: list[str | int]) -> str:
    out = "parameters"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


#: The annotation keyword that says in words what a parameter's ``pattern`` allows (JSON
#: Schema 2020-12 ignores unknown keywords, so validators skip it; users read it).
PATTERN_DESCRIPTION = "x-pattern-description"


def pattern_words(schema: Mapping[str, Any], schema_path: list[str | int]) -> str:
    """What the ``pattern`` at ``schema_path`` allows, in words: never the regex itself."""
    node: Any = schema
    for part in schema_path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    if isinstance(node, Mapping):
        words = node.get(PATTERN_DESCRIPTION)
        if isinstance(words, str) and words.strip():
            return f"must be {words.strip()}"
        description = node.get("description")
        if isinstance(description, str) and description.strip():
            return f"is not in the form this parameter allows ({description.strip()})"
    return "is not in the form this parameter allows"


def _items(error: Any, schema: Mapping[str, Any]) -> list[ErrorItem]:
    kind = error.kind.name
    info: dict[str, Any] = error.kind.as_dict()
    path = list(error.instance_path)
    if kind == "additionalProperties":
        return [
            ErrorItem(_path([*path, name]), "unknown parameter (not declared in the schema)")
            for name in info.get("unexpected", [])
        ]
    if kind == "required":
        return [ErrorItem(_path([*path, str(info.get("property"))]), "is required")]
    if kind == "pattern":
        return [ErrorItem(_path(path), pattern_words(schema, list(error.schema_path)))]
    rules: dict[str, str] = {
        "enum": "is not one of {options}",
        "const": "must be {expected_value!r}",
        "maxLength": "must be at most {limit} characters long",
        "minLength": "must be at least {limit} characters long",
        "maximum": "must be at most {limit}",
        "minimum": "must be at least {limit}",
        "exclusiveMaximum": "must be less than {limit}",
        "exclusiveMinimum": "must be greater than {limit}",
        "maxItems": "must have at most {limit} items",
        "minItems": "must have at least {limit} items",
        "format": "must be a valid {format}",
        "type": "must be of type {types}",
    }
    template = rules.get(kind)
    message = error.message
    if template is not None:
        try:
            message = template.format(**{k: _plain(v) for k, v in info.items()})
        except (KeyError, IndexError):
            message = error.message
    return [ErrorItem(_path(path), message)]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], str):
            return value[0]
        return ", ".join(json.dumps(item, ensure_ascii=False) for item in value)
    return value
