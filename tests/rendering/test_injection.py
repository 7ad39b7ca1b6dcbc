"""No parameter value can change the shape of a stack (property test).

For every service x version x string parameter of the shipped catalogue, and of the
fixture catalogue, arbitrary strings (plus YAML/Jinja-hostile samples) go into that one
parameter. Either the parameter schema refuses the value, and the error names that
parameter, or the stack has exactly the same objects with exactly the same key paths as
the default render, and the value appears verbatim in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.rendering import ParameterInvalid, Renderer, object_id
from tests.rendering.conftest import FIXTURES, INSTANCE, SERVER_SECRET, TENANT

ADVERSARIAL = [
    "",
    "a\nb",
    "line\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
    "\n---\n",
    "---",
    "...",
    "{{ secrets.x }}",
    "{{ 7*7 }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# c #}",
    '"',
    "'",
    '", "extra": "1',
    "\\",
    "\\n",
    "&anchor value",
    "*alias",
    "!!python/object/apply:os.system ['ls']",
    "!!binary aGVsbG8=",
    "key: value",
    ": ",
    "# comment",
    "- item",
    "[1, 2]",
    "{a: 1}",
    "|\n  block",
    ">",
    "%YAML 1.2",
    "@",
    "`",
    "null",
    "true",
    "0x1F",
    "1e3",
    "2024-01-01",
    "\t\ttabs",
    "\r\n",
    "\x00\x07\x1b",
    "\x7f\x85\x9f",
    "a\u2028b\u2029c",
    "\ufeffbom",
    "\ufffe\uffff",
    "\u00e9\u00e8 Oudenaarde \u2013 \U0001f600",
    "a" * 300,
    "ingress.example.org",
    "portal.gent.be",
]


def string_parameters(
    schema: Mapping[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every string-typed property of a parameter schema, with its path."""
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping):
            continue
        kinds = sub.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "string" in kinds:
            yield (*path, name), sub
        if "object" in kinds or "properties" in sub:
            yield from string_parameters(sub, (*path, name))


def _cases() -> list[Any]:
    releases: list[tuple[str, ServiceRelease]] = [
        ("fixture", r)
        for r in load_catalog(FIXTURES / "catalog", FIXTURES / "templates").releases()
    ]
    releases += [("shipped", r) for r in load_catalog().releases()]
    cases = []
    for origin, release in releases:
        for path, sub in string_parameters(release.parameters):
            label = f"{origin}:{release.name}@{release.version.version}:{'.'.join(path)}"
            cases.append(pytest.param(release, path, sub, id=label))
    return cases


CASES = _cases()
RENDERER = Renderer(server_secret=SERVER_SECRET)


def values_for(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.text(),
        st.sampled_from(ADVERSARIAL),
        st.tuples(st.sampled_from(ADVERSARIAL), st.text(max_size=10)).map("".join),
    ]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
            # Values the schema accepts exercise the "lands verbatim" half of the property.
            options.append(st.from_regex(pattern, fullmatch=True))
        except re.error:
            pass
    if isinstance(schema.get("enum"), list):
        options.append(st.sampled_from([v for v in schema["enum"] if isinstance(v, str)] or [""]))
    return st.one_of(options)


def shape(objects: tuple[dict[str, Any], ...]) -> dict[str, set[str]]:
    return {object_id(obj): set(_key_paths(obj, "")) for obj in objects}


def _key_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            yield sub
            yield from _key_paths(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            sub = f"{path}[{i}]"
            yield sub
            yield from _key_paths(item, sub)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _set(path: tuple[str, ...], value: str) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


@pytest.mark.parametrize(("release", "path", "schema"), CASES)
def test_string_parameter_cannot_change_the_stack(
    release: ServiceRelease, path: tuple[str, ...], schema: Mapping[str, Any]
) -> None:
    plan = release.plans[0].name
    default = RENDERER.render(release, plan=plan, tenant=TENANT, instance=INSTANCE, parameters={})
    expected = shape(default.objects)
    location = "parameters." + ".".join(path)

    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(value=values_for(schema))
    def check(value: str) -> None:
        try:
            stack = RENDERER.render(
                release, plan=plan, tenant=TENANT, instance=INSTANCE, parameters=_set(path, value)
            )
        except ParameterInvalid as exc:
            assert any(e.location.startswith(location) for e in exc.errors), exc.errors  # noqa: PT017 (either outcome is allowed)
            return
        assert shape(stack.objects) == expected
        if value:
            assert any(value in text for obj in stack.objects for text in _strings(obj)), value

    check()


def test_the_matrix_is_not_empty() -> None:
    # The fixture catalogue alone has string parameters, so the property always runs.
    assert any("fixture:" in case.id for case in CASES)
