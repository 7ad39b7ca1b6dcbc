"""Semver ranges: the one answer to "may an instance on version X upgrade to Y"."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.versions import matches, newest, parse_range

versions = st.builds(
    lambda a, b, c: f"{a}.{b}.{c}",
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
)


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("24.0.3", ">=24.0.0,<25.0.0", True),
        ("25.0.0", ">=24.0.0,<25.0.0", False),
        ("23.9.9", ">=24.0.0,<25.0.0", False),
        ("24.0.0", ">=24,<25", True),
        ("24.0.0", " >= 24.0.0 , < 25.0.0 ", True),
        ("3.0.0-rc.1", "<3.0.0", True),
        ("3.0.0-rc.1", ">=3.0.0", False),
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "==1.2.4", False),
        ("1.2.3", "!=1.2.4", True),
        ("1.2.3", ">1.2.3", False),
        ("1.2.3", "<=1.2.3", True),
        ("1.2.3", "", False),
    ],
)
def test_matches(version: str, spec: str, expected: bool) -> None:
    assert matches(version, spec) is expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (">=1.0.0,,<2.0.0", "empty comparator"),
        ("~>1.1", "'~>1.1'"),
        (">=one", "'>=one'"),
        ("   ", "empty"),
    ],
)
def test_malformed_ranges_say_which_part(spec: str, words: str) -> None:
    with pytest.raises(VersionRangeInvalid) as caught:
        parse_range(spec)
    assert words in caught.value.detail
    assert caught.value.hint


def test_an_incomplete_version_is_an_error_not_a_no() -> None:
    with pytest.raises(VersionInvalid, match=re.escape("'1.2' is not a semantic version")):
        matches("1.2", ">=1.0.0")


def test_newest_uses_semver_precedence_not_text_order() -> None:
    assert newest(["9.0.0", "10.0.0", "10.0.0-rc.1"]) == "10.0.0"
    assert newest([]) is None


@given(versions, versions)
def test_a_half_open_range_holds_its_lower_bound_but_not_its_upper(low: str, high: str) -> None:
    spec = f">={low},<{high}"
    assert matches(low, spec) is (parse_range(f"<{high}").comparators[0].version > low)
    assert not matches(high, spec)


@given(versions)
def test_str_of_a_range_parses_back_to_the_same_range(version: str) -> None:
    spec = parse_range(f">={version},!={version}")
    assert parse_range(str(spec)) == spec
