"""Semver ranges: the one answer to "may an instance on version X upgrade to Y"."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid
from controlplane.catalog.models import ServiceDefinition, VersionStatus
from controlplane.catalog.validation import check_versions
from controlplane.catalog.versions import (
    matches,
    newest,
    parse_range,
    parse_version,
    upgrade_refusal,
)
from controlplane.provisioning.admission import AdmissionRefused, _check_upgrade
from controlplane.provisioning.fleet import upgrade_exclusion
from controlplane.provisioning.lifecycle import VersionFacts, upgrade_target
from tests.factories import demo_release

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


# -- one upgrade rule: admission, fleet, lifecycle and validation agree (issue 13, item 10) --

OK, REFUSED, INVALID = "ok", "refused", "invalid"
UPGRADE_ROWS = [
    # (current, target, target's upgrade_from, expected)
    ("24.0.3", "25.1.0", ">=24,<25.1", OK),  # partial versions: once a 500 in admission
    ("25.0.9", "25.1.0", ">=24,<25.1", OK),
    ("25.1.0", "25.2.0", ">=24,<25.1", REFUSED),  # <25.1 means <25.1.0
    ("23.9.0", "25.1.0", ">=24,<25.1", REFUSED),
    ("24.0.0", "25.0.0", ">=24.0.0,<25.0.0", OK),
    ("24.0.0", "25.0.0", "24.0.0", OK),  # a bare version means ==
    ("24.0.1", "25.0.0", "==24.0.0", REFUSED),
    ("24.0.0", "25.0.0", "", REFUSED),  # empty: no upgrade path declared
    ("24.0.0", "25.0.0", "   ", REFUSED),
    ("3.0.0-rc.1", "3.0.0", ">=2.0.0,<3.0.0", OK),  # a pre-release sorts before its release
    ("3.0.0-rc.1", "3.0.0", ">=3.0.0", REFUSED),
    ("26.0.0", "25.0.0", ">=24", REFUSED),  # going down is never an update
    ("24.0.0", "25.0.0", ">=24.0.0,,<26", INVALID),
    ("24.0.0", "25.0.0", "~>24.0", INVALID),
    ("24.0.0", "25.0.0", ">=24.0.0 <26", INVALID),
    ("24.0.0", "25.0.0", ">=24.0.0\n<26", INVALID),
    ("24.0.0", "25.0.0", "^24", INVALID),
]
ROW_IDS = [f"{c}->{t} [{s!r}]" for c, t, s, _ in UPGRADE_ROWS]


@pytest.mark.parametrize(("current", "target", "spec", "expected"), UPGRADE_ROWS, ids=ROW_IDS)
def test_one_upgrade_rule_everywhere(current: str, target: str, spec: str, expected: str) -> None:
    # The rule itself: a reason, None, or an error for malformed input (never a guess).
    if expected == INVALID:
        with pytest.raises(VersionRangeInvalid):
            upgrade_refusal(current, target, spec)
    else:
        assert (upgrade_refusal(current, target, spec) is None) is (expected == OK)

    # Admission (PATCH version): passes, or refuses with a 422 naming `version`; never a 500.
    release = demo_release(target, upgrade_from=spec)
    if expected == OK:
        _check_upgrade(current, release)
    else:
        with pytest.raises(AdmissionRefused) as refused:
            _check_upgrade(current, release)
        assert refused.value.status == 422
        assert [e.location for e in refused.value.errors] == ["version"]

    # Fleet plans: the instance is included, or excluded with a reason.
    assert (upgrade_exclusion(current, target, spec) is None) is (expected == OK)

    # Lifecycle: "upgrade available" offers the target exactly when an update may reach it.
    facts = [_facts(current, ""), _facts(target, spec)]
    assert upgrade_target(current, facts) == (target if expected == OK else None)

    # Validation of a catalogue file declaring both versions: a malformed range is refused
    # naming its key; a non-empty range must reach the older version; an empty one declares
    # "no upgrade path", which is allowed (and which the three above read as "nothing").
    if parse_version(current) < parse_version(target):
        problems = [
            message
            for key, message in check_versions(_definition(current, target, spec))
            if key == "versions[1].upgrade_from"
        ]
        assert (problems == []) is (expected == OK or not spec.strip()), problems


def _facts(version: str, spec: str) -> VersionFacts:
    return VersionFacts(
        version=version,
        status=VersionStatus.ACTIVE,
        support_ends=None,
        status_message=None,
        upgrade_from=spec,
    )


def _definition(current: str, target: str, spec: str) -> ServiceDefinition:
    base = demo_release(current)
    return ServiceDefinition(
        name=base.name,
        title=base.title,
        description=base.description,
        category=base.category,
        owner=base.owner,
        versions=[
            demo_release(current).version,
            demo_release(target, upgrade_from=spec).version,
        ],
        plans=base.plans,
        parameters=dict(base.parameters),
    )


def test_an_invalid_range_is_refused_by_validation_naming_the_key() -> None:
    problems = dict(check_versions(_definition("24.0.0", "25.0.0", ">=24.0.0 <26")))
    message = problems["versions[1].upgrade_from"]
    assert "'>=24.0.0 <26'" in message
    assert "comma" in message
