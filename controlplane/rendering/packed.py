"""A rendered stack's objects, packed for the trip from a render process to the worker.

A render process sends every object back to the worker that writes the targets. For a
target that writes YAML files, the worker needs no more than each object's id and the
Secrets (it seals those itself); the YAML of every other object is made beside the render.
Unpickling all objects anyway cost the worker, the busiest process of a cold fleet, about
half a millisecond per instance (docs/benchmarks.md). So :class:`PackedObjects` keeps the
objects a target needs loose and the rest as one pickle, opened the first time one of them
is read: a target that does read them (a retained instance's data objects, a preview)
still gets every object, in order.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from controlplane.rendering.naming import object_id

KubeObject = dict[str, Any]


class PackedObjects(Sequence[KubeObject]):
    """Objects in apply order: those ``loose`` picks as they are, the others pickled."""

    __slots__ = ("_ids", "_loose", "_packed", "_unpacked")

    def __init__(
        self, objects: Sequence[KubeObject], *, loose: Callable[[KubeObject], bool]
    ) -> None:
        self._ids = tuple(object_id(obj) for obj in objects)
        self._loose = {index: obj for index, obj in enumerate(objects) if loose(obj)}
        rest = [obj for index, obj in enumerate(objects) if index not in self._loose]
        self._packed = pickle.dumps(rest, protocol=pickle.HIGHEST_PROTOCOL)
        self._unpacked: tuple[KubeObject, ...] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        """Every object's ``object_id``, in apply order (read without unpacking)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> KubeObject: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[KubeObject]: ...

    def __getitem__(self, index: int | slice) -> KubeObject | Sequence[KubeObject]:
        if isinstance(index, int):
            loose = self._loose.get(index + len(self) if index < 0 else index)
            if loose is not None:
                return loose
        return self._all()[index]

    def __iter__(self) -> Iterator[KubeObject]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return self._all() == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # mutable contents, like a list

    def __repr__(self) -> str:
        return f"PackedObjects({list(self._ids)!r})"

    def __getstate__(self) -> tuple[Any, ...]:
        # What travels between processes: never the unpacked copy.
        return (self._ids, self._loose, self._packed)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._ids, self._loose, self._packed = state
        self._unpacked = None

    def _all(self) -> tuple[KubeObject, ...]:
        # Unpacked once; two threads racing here unpack twice and keep equal copies.
        if self._unpacked is None:
            # Made by this platform's own render process (as is all of multiprocessing's
            # traffic), never by a user.
            rest = iter(pickle.loads(self._packed))  # noqa: S301
            self._unpacked = tuple(
                self._loose[index] if index in self._loose else next(rest)
                for index in range(len(self._ids))
            )
        return self._unpacked


def object_ids(objects: Sequence[KubeObject]) -> tuple[str, ...]:
    """The ``object_id`` of each object, in order, without unpacking packed objects."""
    if isinstance(objects, PackedObjects):
        return objects.ids
    return tuple(object_id(obj) for obj in objects)
