"""The sandbox's short ways (``emit`` and ``mapping.key``) say what the long ways say."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml_rs
from hypothesis import given
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from controlplane.catalog.models import TemplateBundle
from controlplane.rendering.errors import TemplateInvalid
from controlplane.rendering.templates import (
    _YAML_UNSAFE,
    BundleCache,
    SharedBytecode,
    _escape,
    compile_bundle,
    emit,
    make_environment,
)

# JSON values, with the characters YAML treats differently from JSON among the strings.
_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('\u2028\x85\ufeff"\\'))
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(_VALUES)
def test_emit_writes_what_json_writes_made_yaml_safe(value: Any) -> None:
    expected = _YAML_UNSAFE.sub(_escape, json.dumps(value, ensure_ascii=False))
    assert emit(value) == expected


@given(_VALUES)
def test_an_emitted_value_reads_back_as_the_same_value(value: Any) -> None:
    loaded = yaml_rs.loads(f"value: {emit(value)}\n", parse_datetime=False)
    assert isinstance(loaded, dict)
    assert loaded["value"] == value
    assert type(loaded["value"]) is type(value)


@pytest.mark.parametrize(
    "value", ["del\x7f", "nel\x85", "ls\u2028", "bom\ufeff", {"k": ["\x7f"]}, "plain ascii"]
)
def test_characters_yaml_reads_differently_are_escaped_in_ascii_text_too(value: Any) -> None:
    """DEL is ASCII: the short way for ASCII text must still escape it."""
    expected = _YAML_UNSAFE.sub(_escape, json.dumps(value, ensure_ascii=False))
    assert emit(value) == expected
    assert yaml_rs.loads(f"value: {emit(value)}\n", parse_datetime=False)["value"] == value


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
def test_emit_refuses_what_is_not_json(value: Any) -> None:
    with pytest.raises(TypeError, match="not a JSON value"):
        emit(value)


def test_emit_raises_for_an_undefined_name() -> None:
    env = make_environment({"t.yaml.j2": "a: {{ nowhere }}"})
    with pytest.raises(jinja2.UndefinedError, match="nowhere"):
        env.get_template("t.yaml.j2").render({})


# Keys that are also dict attributes must keep Jinja's meaning (the attribute wins).
_KEYS = st.sampled_from(["items", "keys", "get", "copy", "__class__", "__init__", "mro"]) | _TEXT


class _Mapping(dict[str, Any]):
    """A dict subclass: not the plain dict the short way is for."""

    shadow = "attribute"


@given(st.dictionaries(_KEYS, st.integers(), max_size=5), _KEYS)
def test_mapping_lookup_is_the_sandbox_lookup(mapping: dict[str, Any], name: str) -> None:
    fast = make_environment({})
    plain = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    for obj in (mapping, _Mapping(mapping, shadow=1)):
        for attribute in (name, "shadow"):
            got, want = fast.getattr(obj, attribute), plain.getattr(obj, attribute)
            if isinstance(want, jinja2.Undefined):
                assert isinstance(got, jinja2.Undefined)
                assert type(got) is type(want)
            else:
                assert got == want


def test_a_key_named_like_a_dict_method_is_still_the_method_through_a_dot() -> None:
    env = make_environment(
        {"t.yaml.j2": "a: {{ m.host }}\nb: {{ m['items'] }}\nc: {{ m.items() | list | length }}"}
    )
    text = env.get_template("t.yaml.j2").render({"m": {"host": "h", "items": "x"}})
    assert yaml_rs.loads(text) == {"a": "h", "b": "x", "c": 2}


def test_an_unsafe_attribute_is_still_refused() -> None:
    env = make_environment({"t.yaml.j2": "a: {{ m.__class__.__subclasses__() }}"})
    with pytest.raises(jinja2.exceptions.SecurityError):
        env.get_template("t.yaml.j2").render({"m": {}})


_UNUSED_INPUT = {
    "_components/box.yaml.j2": (
        "{#- component: box\ninputs:\n  size: {type: string}\n  colour: {type: string}\n"
        "required: [size]\n-#}\nsize: {{ inputs.size }}\n"
    ),
    "10-box.yaml.j2": '{{ component("box", size="2Gi") }}',
}


def test_an_unused_input_is_refused_at_publication_and_not_checked_again_by_a_renderer() -> None:
    with pytest.raises(TemplateInvalid) as refused:
        compile_bundle(_UNUSED_INPUT, "box")
    assert "input 'colour' is declared but never used" in refused.value.errors[0].message
    # A render process compiles published bundles without the lint: the output is the same.
    compiled = compile_bundle(_UNUSED_INPUT, "box", lint=False)
    assert compiled.render({}) == [("10-box.yaml.j2", 'size: "2Gi"\n')]


def _bundle(colour: str) -> dict[str, str]:
    return {
        "_components/box.yaml.j2": (
            "{#- component: box\ninputs:\n  size: {type: string}\nrequired: [size]\n-#}\n"
            f"size: {{{{ inputs.size }}}}\ncolour: {colour}\n"
        ),
        "10-box.yaml.j2": '{{ component("box", size=plan) }}',
    }


def test_render_processes_share_compiled_templates_and_same_names_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one process compiled, another loads (it compiles nothing); two releases with
    templates of the same name keep their own code."""
    first, second = SharedBytecode(str(tmp_path)), SharedBytecode(str(tmp_path))
    blue = compile_bundle(_bundle("blue"), "box", lint=False, bytecode=first)
    red = compile_bundle(_bundle("red"), "box", lint=False, bytecode=first)
    compiled: list[str] = []
    real = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    loaded_blue = compile_bundle(_bundle("blue"), "box", lint=False, bytecode=second)
    loaded_red = compile_bundle(_bundle("red"), "box", lint=False, bytecode=second)
    assert compiled == []
    for original, loaded, colour in ((blue, loaded_blue, "blue"), (red, loaded_red, "red")):
        out = [("10-box.yaml.j2", f'size: "2Gi"\ncolour: {colour}\n')]
        assert original.render({"plan": "2Gi"}) == loaded.render({"plan": "2Gi"}) == out
    # A changed template is compiled, not taken from the folder; the unchanged one is.
    green = _bundle("green")
    compile_bundle(green, "box", lint=False, bytecode=second)
    assert compiled == [green["_components/box.yaml.j2"]]


def test_a_bundle_cache_compiles_under_its_bundle_lock(tmp_path: Path) -> None:
    """Another process that needs the same bundle waits for the lock, then loads the code."""
    shared = SharedBytecode(str(tmp_path))
    bundle = TemplateBundle(files=_bundle("blue"))
    cache = BundleCache(lint=False, bytecode=shared)
    held: list[bool] = []
    real = shared.compiling

    @contextlib.contextmanager
    def watching(key: str) -> Iterator[None]:
        with real(key):
            lock = next(tmp_path.glob("*.lock"))
            with open(lock, "rb") as other:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held.append(True)
            yield

    shared.compiling = watching  # type: ignore[method-assign]
    compiled = cache.get(bundle, "box")
    assert held == [True]
    assert compiled.render({"plan": "1Gi"}) == [("10-box.yaml.j2", 'size: "1Gi"\ncolour: blue\n')]
