"""Packed objects: what a render process sends back for a target that writes YAML."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from controlplane.rendering import packed as packed_module
from controlplane.rendering.naming import object_id
from controlplane.rendering.packed import PackedObjects, object_ids


def _objects() -> tuple[dict[str, Any], ...]:
    def obj(kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": {"k": name}}

    return (
        obj("ConfigMap", "first"),
        obj("Secret", "credentials"),
        obj("ConfigMap", "second"),
        obj("Secret", "tls"),
        obj("Service", "web"),
    )


def _is_secret(obj: dict[str, Any]) -> bool:
    return obj["kind"] == "Secret"


def _sent(objects: tuple[dict[str, Any], ...]) -> PackedObjects:
    """As the worker receives them: through pickle, as multiprocessing sends them."""
    packed: PackedObjects = pickle.loads(pickle.dumps(PackedObjects(objects, loose=_is_secret)))
    return packed


def test_every_object_comes_back_in_apply_order() -> None:
    objects = _objects()
    packed = _sent(objects)
    assert len(packed) == len(objects)
    assert list(packed) == list(objects)
    assert packed == objects
    assert [packed[i] for i in range(len(objects))] == list(objects)
    assert packed[-1] == objects[-1]
    assert list(packed[1:3]) == list(objects[1:3])
    assert packed.ids == tuple(object_id(o) for o in objects)
    assert object_ids(packed) == object_ids(objects) == packed.ids


def test_ids_and_loose_objects_are_read_without_unpacking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = _objects()
    packed = _sent(objects)

    def refuse(data: bytes) -> object:
        raise AssertionError("unpacked")

    monkeypatch.setattr(packed_module.pickle, "loads", refuse)
    assert len(packed) == 5
    assert object_ids(packed)[1] == "v1/Secret/credentials"
    assert packed[1] == objects[1]
    assert packed[-2] == objects[3]
    with pytest.raises(AssertionError, match="unpacked"):
        packed[0]


def test_the_unpacked_copy_does_not_travel() -> None:
    objects = _objects()
    packed = PackedObjects(objects, loose=_is_secret)
    assert list(packed) == list(objects)  # unpacked here
    again = pickle.loads(pickle.dumps(packed))
    assert len(pickle.dumps(packed)) == len(pickle.dumps(PackedObjects(objects, loose=_is_secret)))
    assert again == objects
