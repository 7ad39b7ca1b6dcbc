"""Where a service keeps data (catalogue ``data``), checked against what its stacks render.

A catalogue file lists every place its service keeps data: the PostgreSQL component,
another database (a StatefulSet of the stack), a volume (a PersistentVolumeClaim of the
stack). What is backed up is derived from the kind (:func:`backup_of`), never typed by
hand. ``catalog validate`` and publishing check the list against the render of every
version (:func:`check_data`), so that it cannot drift from the templates:

- a ``postgresql`` entry, named ``postgres``, exactly when the stacks render the
  PostgreSQL component (its StatefulSet ``postgres``; a CloudNativePG ``Cluster`` of the
  same name on targets with ``cloudnative-pg``);
- every other StatefulSet of the stack is a database entry of that name (``mariadb``,
  ``rabbitmq``, ``elasticsearch`` …), and every database entry names a StatefulSet;
- every PersistentVolumeClaim the stack renders is either mounted by a declared database's
  StatefulSet (its data: ``postgres-data``) or declared as a ``volume`` of that name, and
  every declared volume is rendered.

The check is across all versions: what any version renders is declared, and each declared
place is rendered by at least one version (a volume a newer version adds is declared once).

This module must not know about Jinja2, Kubernetes schemas or the database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from controlplane.catalog.models import DataKind, ServiceDefinition

#: The StatefulSet (and CloudNativePG Cluster) of the shared PostgreSQL component.
POSTGRES_WORKLOAD = "postgres"
#: What happens to data of each kind: derived, so that the catalogue cannot promise more.
BACKED_UP = (
    "backed up daily with point-in-time recovery on targets with cloudnative-pg and a backup "
    "destination; kept on delete until purge but not backed up elsewhere"
)
NOT_BACKED_UP = "kept on delete until purge; not backed up"

Objects = Sequence[Mapping[str, Any]]
Problem = tuple[str, str]


def backup_of(kind: DataKind) -> str:
    """Whether and how data of this kind is backed up."""
    return BACKED_UP if kind == DataKind.POSTGRESQL else NOT_BACKED_UP


def check_data(definition: ServiceDefinition, renders: Mapping[str, Objects]) -> Iterator[Problem]:
    """The declaration against one render of each version (by version number).

    Across all versions: what any version renders must be declared, and what is declared
    must be rendered by at least one version (a volume a newer version adds is declared
    once). Each problem names the service, the entry or object and what to fix.
    """
    service = definition.name
    places = definition.data
    first: dict[str, int] = {}
    for index, place in enumerate(places):
        if place.name in first:
            yield (
                f"data[{index}].name",
                f"{place.name!r} is declared twice (also data[{first[place.name]}])",
            )
        first.setdefault(place.name, index)
        if place.kind == DataKind.POSTGRESQL and place.name != POSTGRES_WORKLOAD:
            yield (
                f"data[{index}].name",
                f"a postgresql entry is the PostgreSQL component: name it "
                f"{POSTGRES_WORKLOAD!r} (not {place.name!r})",
            )
    # Which versions render each StatefulSet and claim; the claims StatefulSets mount.
    statefulsets: dict[str, list[str]] = {}
    claims: dict[str, list[str]] = {}
    mounted_by: dict[str, str] = {}
    for version, objects in renders.items():
        for obj in objects:
            name = str(obj["metadata"]["name"])
            if obj.get("kind") == "StatefulSet":
                statefulsets.setdefault(name, []).append(version)
                mounted_by.update(dict.fromkeys(_claims_of(obj), name))
            elif obj.get("kind") == "PersistentVolumeClaim":
                claims.setdefault(name, []).append(version)
    databases = {p.name: i for i, p in enumerate(places) if p.kind != DataKind.VOLUME}
    volumes = {p.name: i for i, p in enumerate(places) if p.kind == DataKind.VOLUME}
    others = (DataKind.VOLUME, DataKind.POSTGRESQL)
    kinds = "|".join(k.value for k in DataKind if k not in others)

    for index, place in enumerate(places):
        if place.kind == DataKind.POSTGRESQL:
            if POSTGRES_WORKLOAD not in statefulsets:
                yield (
                    f"data[{index}]",
                    f"no version of {service} runs the PostgreSQL component (StatefulSet "
                    f"{POSTGRES_WORKLOAD!r}): remove the entry",
                )
        elif place.kind != DataKind.VOLUME:
            if place.name not in statefulsets:
                yield (
                    f"data[{index}].name",
                    f"no version of {service} renders a StatefulSet {place.name!r} (they "
                    f"render: {_listed(statefulsets)}): a {place.kind.value} entry names the "
                    "StatefulSet that runs it; fix the name or remove the entry",
                )
        elif place.name in mounted_by and mounted_by[place.name] in databases:
            owner = mounted_by[place.name]
            yield (
                f"data[{index}]",
                f"PersistentVolumeClaim {place.name!r} is the data of StatefulSet {owner!r}, "
                f"declared as data[{databases[owner]}]: remove this entry",
            )
        elif place.name not in claims:
            yield (
                f"data[{index}].name",
                f"no version of {service} renders a PersistentVolumeClaim {place.name!r} "
                f"(they render: {_listed(claims)}): fix the name or remove the entry",
            )
    if POSTGRES_WORKLOAD in statefulsets and not any(p.kind == DataKind.POSTGRESQL for p in places):
        yield (
            "data",
            f"{service} {_versions(statefulsets[POSTGRES_WORKLOAD], renders)} runs the "
            f"PostgreSQL component (StatefulSet {POSTGRES_WORKLOAD!r}) and has no postgresql "
            f"entry: add {{name: {POSTGRES_WORKLOAD}, kind: postgresql, holds: <what it holds>}}",
        )
    for name, where in statefulsets.items():
        if name != POSTGRES_WORKLOAD and name not in databases:
            yield (
                "data",
                f"{service} {_versions(where, renders)} runs StatefulSet {name!r}, which has "
                f"no entry: add {{name: {name}, kind: <{kinds}>, holds: <what it holds>}}",
            )
    for claim, where in claims.items():
        if claim in volumes or claim in mounted_by:
            continue  # a StatefulSet's data: declared (or reported) with its StatefulSet
        yield (
            "data",
            f"{service} {_versions(where, renders)} renders PersistentVolumeClaim {claim!r}, "
            f"which has no entry: add {{name: {claim}, kind: volume, holds: <what it holds>}}",
        )


def _claims_of(statefulset: Mapping[str, Any]) -> list[str]:
    """The claims a StatefulSet's pods mount, and its claim templates."""
    spec = statefulset.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    mounted = [
        str(v["persistentVolumeClaim"]["claimName"])
        for v in pod.get("volumes") or []
        if isinstance(v.get("persistentVolumeClaim"), Mapping)
    ]
    templates = [str(t["metadata"]["name"]) for t in spec.get("volumeClaimTemplates") or []]
    return [*mounted, *templates]


def _versions(versions: list[str], renders: Mapping[str, Objects]) -> str:
    if len(versions) == len(renders) and len(renders) > 1:
        return "(every version)"
    return ", ".join(versions)


def _listed(names: Sequence[str] | Mapping[str, Any]) -> str:
    return ", ".join(sorted(names)) or "none"
