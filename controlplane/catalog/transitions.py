"""Plan changes and upgrades a catalogue allows, checked for updates the apiserver refuses.

An instance changes plan within its version (from any plan to any other) and upgrades
along the ``upgrade_from`` ranges (from an older version, keeping its plan). Each change
re-applies the instance's objects; where an immutable field differs between the two
renders, the apiserver answers 422 and the instance is stuck half-way. This module
decides which renders to compare and how to report what differs. *What* is immutable is
Kubernetes knowledge and lives with the renderer: the caller passes it as an
:class:`UpdateCheck` (``rendering.immutability.refused_changes``).

This module must not know about Kubernetes, Jinja2 or the database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from semver import Version

from controlplane.catalog.models import ServiceDefinition
from controlplane.catalog.versions import parse_range, parse_version
from controlplane.errors import ControlPlaneError

#: The objects of one render.
Objects = Sequence[Mapping[str, Any]]
#: The objects of every render that succeeded, by (version index, plan name).
Renders = Mapping[tuple[int, str], Objects]
#: How many plan pairs or plans one message lists before "and N more".
_LISTED = 3


@dataclass(frozen=True)
class RefusedChange:
    """A field that an update from one render to another changes, and the apiserver refuses."""

    #: ``Kind/name`` of the object.
    object: str
    #: Key path of the immutable field (``spec.volumeClaimTemplates``).
    field: str
    #: What differs, e.g. ``spec.selector.matchLabels.tier: "web" → "front"``.
    change: str
    #: What the apiserver answers, and how to write the templates instead.
    reason: str


class UpdateCheck(Protocol):
    """The changes from ``before`` to ``after`` (objects matched by group, kind and name)
    that the apiserver refuses. ``plan_change`` says the update is a change of plan."""

    def __call__(
        self, before: Objects, after: Objects, *, plan_change: bool
    ) -> list[RefusedChange]: ...


@dataclass(frozen=True)
class TransitionReport:
    """What the comparison found, and how many plan changes and upgrades it compared."""

    problems: list[tuple[str, str]]
    plan_changes: int
    upgrades: int


def check_transitions(
    definition: ServiceDefinition, renders: Renders, check_update: UpdateCheck
) -> TransitionReport:
    """Every refused change of every plan change and upgrade, as (key path, message)."""
    problems: list[tuple[str, str]] = []
    plan_changes = upgrades = 0
    plans = [plan.name for plan in definition.plans]
    for index, version in enumerate(definition.versions):
        found: dict[tuple[str, str], list[tuple[str, RefusedChange]]] = {}
        for position, before in enumerate(plans):
            for after in plans[position + 1 :]:
                if (index, before) not in renders or (index, after) not in renders:
                    continue
                plan_changes += 1
                # Both ways: a tenant may move to a smaller plan as well as to a larger one.
                seen: set[tuple[str, str]] = set()
                for old, new in ((before, after), (after, before)):
                    for refused in check_update(
                        renders[index, old], renders[index, new], plan_change=True
                    ):
                        key = (refused.object, refused.field)
                        if key not in seen:
                            seen.add(key)
                            found.setdefault(key, []).append((f"{old} → {new}", refused))
        for (obj, field), changes in found.items():
            problems.append(
                (
                    f"versions[{index}] {version.version}, plan changes: {obj}: {field}",
                    f"differs between plans ({_listed(changes)}), but {changes[0][1].reason}",
                )
            )

    for index, older in _upgrades(definition):
        version = definition.versions[index]
        found = {}
        for plan in plans:
            if (older, plan) not in renders or (index, plan) not in renders:
                continue
            upgrades += 1
            for refused in check_update(
                renders[older, plan], renders[index, plan], plan_change=False
            ):
                found.setdefault((refused.object, refused.field), []).append(
                    (f"plan {plan}", refused)
                )
        for (obj, field), changes in found.items():
            problems.append(
                (
                    f"versions[{index}] {version.version}, upgrade from "
                    f"{definition.versions[older].version}: {obj}: {field}",
                    f"changes on this upgrade ({_listed(changes)}), but {changes[0][1].reason}",
                )
            )
    return TransitionReport(problems=problems, plan_changes=plan_changes, upgrades=upgrades)


def _listed(changes: list[tuple[str, RefusedChange]]) -> str:
    shown = [f"{label}: {refused.change}" for label, refused in changes[:_LISTED]]
    more = len(changes) - _LISTED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _upgrades(definition: ServiceDefinition) -> Iterator[tuple[int, int]]:
    """(version index, index of an older version it upgrades from), per declared range.

    Versions or ranges that do not parse are skipped: ``check_versions`` reports them.
    """
    parsed: dict[int, Version] = {}
    for index, version in enumerate(definition.versions):
        try:
            parsed[index] = parse_version(version.version)
        except ControlPlaneError:
            continue
    for index, version in enumerate(definition.versions):
        if index not in parsed or not version.upgrade_from.strip():
            continue
        try:
            spec = parse_range(version.upgrade_from)
        except ControlPlaneError:
            continue
        for older, number in parsed.items():
            if older != index and number < parsed[index] and number in spec:
                yield index, older
