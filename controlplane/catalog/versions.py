"""Semantic versions and version ranges of catalogue services.

A catalogue version declares the versions an instance may upgrade *from* as a range of
comma-separated comparators, all of which must hold: ``>=24.0.0,<25.0.0``. Validation,
admission of upgrades and fleet upgrades all read ranges through this module, so that
"does 24.0.3 match" has exactly one answer in the whole control plane.

Comparison follows SemVer 2.0 precedence (the ``semver`` package): pre-releases sort
before their release (``3.0.0-rc.1 < 3.0.0``). A comparator's version may leave out minor
and patch (``<25`` means ``<25.0.0``, ``<25.1`` means ``<25.1.0``); a version being tested
must be complete. An empty range declares no upgrade path: nothing matches it (the oldest
version of a service has none). :func:`upgrade_refusal` is the whole upgrade rule.

This module must not know about files, templates or the database.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semver import Version

from controlplane.catalog.errors import VersionInvalid, VersionRangeInvalid

_OPERATORS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
    "=": operator.eq,
}
# Longest operators first, so that ">=" is not read as ">" followed by "=1.0.0". Only
# spaces around the parts: a tab, newline or other control character is not a range.
_COMPARATOR = re.compile(r" *(>=|<=|==|!=|>|<|=)? *([0-9A-Za-z.+-]+) *")
_EXAMPLE = ">=24.0.0,<25.0.0"


@dataclass(frozen=True, slots=True)
class Comparator:
    """One condition of a range, such as ``>=24.0.0``."""

    op: str
    version: Version

    def __call__(self, version: Version) -> bool:
        return _OPERATORS[self.op](version, self.version)

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True, slots=True)
class VersionRange:
    """All comparators must hold for a version to be in the range."""

    comparators: tuple[Comparator, ...]

    def __contains__(self, version: object) -> bool:
        if isinstance(version, str):
            version = parse_version(version)
        if not isinstance(version, Version):
            return False
        return all(c(version) for c in self.comparators)

    def select(self, versions: Iterable[str]) -> list[str]:
        """The versions of ``versions`` inside the range, in the order given."""
        return [v for v in versions if v in self]

    def __str__(self) -> str:
        return ",".join(str(c) for c in self.comparators)


def parse_version(version: str) -> Version:
    """A complete semantic version (``MAJOR.MINOR.PATCH[-pre]``), or :class:`VersionInvalid`."""
    try:
        return Version.parse(version)
    except (ValueError, TypeError) as exc:
        raise VersionInvalid(
            f"{version!r} is not a semantic version.",
            hint="Write MAJOR.MINOR.PATCH with an optional pre-release: 25.0.6 or 3.0.0-rc.1.",
        ) from exc


def parse_range(spec: str) -> VersionRange:
    """Parse ``">=24.0.0,<25.0.0"``; raise :class:`VersionRangeInvalid` naming the bad part."""
    if not spec.strip():
        raise VersionRangeInvalid(
            "The version range is empty.", hint=f"Write comparators such as {_EXAMPLE!r}."
        )
    comparators: list[Comparator] = []
    for part in spec.split(","):
        match = _COMPARATOR.fullmatch(part)
        if match is None and part.strip():
            # e.g. two comparators without a comma between them: ">=24.0.0 <25.0.0".
            raise VersionRangeInvalid(
                f"{part.strip(' ')!r} in the version range {spec!r} is not a comparator.",
                hint=(
                    "A comparator is one of >=, >, <=, <, ==, != followed by a semantic "
                    f"version; separate comparators with commas, e.g. {_EXAMPLE!r}."
                ),
            )
        if match is None:
            raise VersionRangeInvalid(
                f"The version range {spec!r} has an empty comparator.",
                hint=f"Separate comparators with single commas, e.g. {_EXAMPLE!r}.",
            )
        op, text = match.group(1) or "==", match.group(2)
        try:
            version = Version.parse(text, optional_minor_and_patch=True)
        except (ValueError, TypeError) as exc:
            raise VersionRangeInvalid(
                f"{part.strip()!r} in the version range {spec!r} is not a comparator.",
                hint=(
                    "A comparator is one of >=, >, <=, <, ==, != followed by a semantic "
                    f"version, e.g. {_EXAMPLE!r}."
                ),
            ) from exc
        comparators.append(Comparator(op, version))
    return VersionRange(tuple(comparators))


def matches(version: str, spec: str) -> bool:
    """Whether ``version`` is inside the range ``spec``.

    An empty ``spec`` matches nothing: a version with no ``upgrade_from`` cannot be reached
    by an upgrade. Raises :class:`VersionInvalid` or :class:`VersionRangeInvalid` on
    malformed input rather than answering ``False``, so that a typo is never read as "no".
    """
    if not spec.strip():
        parse_version(version)
        return False
    return parse_version(version) in parse_range(spec)


def upgrade_refusal(current: str, target: str, upgrade_from: str) -> str | None:
    """Why an instance on ``current`` cannot be updated to ``target``; ``None`` if it can.

    ``upgrade_from`` is the target version's declared range. The one rule that admission
    (PATCH), fleet plans and the lifecycle ("upgrade available") all apply: the target must
    be newer, and its range must accept ``current``. An empty range declares no upgrade
    path, so nothing can be updated to that version. Raises :class:`VersionInvalid` or
    :class:`VersionRangeInvalid` on malformed input, never answers it with a guess.
    """
    old, new = parse_version(current), parse_version(target)
    spec = parse_range(upgrade_from) if upgrade_from.strip() else None
    if old == new:
        return f"already on {current}"
    if old > new:
        return f"already newer ({current})"
    if spec is None:
        return f"{target} declares no upgrade path (its upgrade_from is empty)"
    if old not in spec:
        return f"{target} upgrades only from {upgrade_from}"
    return None


def crossed_by_rollback(current: str, target: str, versions: Iterable[str]) -> list[str]:
    """The versions a rollback from ``current`` down to ``target`` goes back across.

    Every ``V`` of ``versions`` with ``target < V <= current`` by SemVer precedence, oldest
    first: the upgrades into them are the ones being undone. Empty when ``target`` is not
    older than ``current``.
    """
    old, new = parse_version(target), parse_version(current)
    return sorted((v for v in versions if old < parse_version(v) <= new), key=parse_version)


def newest(versions: Iterable[str]) -> str | None:
    """The highest of ``versions`` by SemVer precedence (``None`` if there are none)."""
    return max(versions, key=parse_version, default=None)
