"""canonical_json spells every value as ``json`` always did: stored digests depend on it.

The fast path (orjson) must give the same bytes, or leave the value to ``json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.catalog.models import canonical_json


def reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too: orjson refuses those
    | st.floats()  # NaN and infinities too
    | st.text()  # control characters, U+2028 (lone surrogates: below)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500)
@given(documents)
def test_every_json_value_is_spelled_as_json_spells_it(value: Any) -> None:
    assert canonical_json(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1e-05},  # orjson: 0.00001
        {"a": [1, 2, {"c": 1e16}]},  # orjson: 1e16, json: 1e+16
        1e-07,  # a float alone, with nothing around it
        {"n": float("nan")},  # orjson: null, json: NaN
        [float("inf"), -0.0],
        {"a": None},
        {"big": 2**70},
        {1: "integer key"},
        {"ip": "127.0.0.1", "tag": "redis:7.2-alpine", "text": "x:1.5,y"},
        {"k": "\u2028\x7f\x00é"},
        {"k": "\ud800"},  # a lone surrogate: orjson refuses it, json writes it
    ],
)
def test_values_where_orjson_differs_or_refuses_come_out_as_json(value: Any) -> None:
    assert canonical_json(value) == reference(value)


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [{"p": Point(1)}, {"d": date(2026, 12, 1)}, {"s": {1, 2}}])
def test_what_json_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)
