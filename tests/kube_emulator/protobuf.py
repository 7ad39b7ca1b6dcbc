"""Decoding the few protobuf bodies client-go sends, so Helm's release storage works.

client-go's typed clients write built-in kinds as ``application/vnd.kubernetes.protobuf``
(Helm's default storage driver creates and updates ``Secret`` objects that way), while they
accept JSON answers. The emulator therefore decodes protobuf *requests* for Secret and
ConfigMap (with the object metadata Helm sets) and always answers in JSON. Other kinds in
protobuf are refused with 415. Field numbers are those of k8s.io/api core/v1 generated.proto.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level (field number, value) pairs; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(value: int | bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, item in fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(item)
        elif number == 2 and isinstance(item, bytes):
            val = item
    return key, val


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, value in fields(data):
        if number in names:
            meta[names[number]] = _text(value)
        elif number == 11:
            key, val = _entry(value)
            meta.setdefault("labels", {})[key] = val.decode()
        elif number == 12:
            key, val = _entry(value)
            meta.setdefault("annotations", {})[key] = val.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def decode(body: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf envelope holding a Secret or ConfigMap → its JSON form."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body (missing magic prefix)")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for tnum, tval in fields(value):
                if tnum == 1:
                    api_version = _text(tval)
                elif tnum == 2:
                    kind = _text(tval)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    obj: dict[str, Any] = {"apiVersion": api_version or "v1", "kind": kind}
    if kind not in ("Secret", "ConfigMap"):
        raise NotImplementedError(f"protobuf bodies of kind {kind!r}")
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
        elif kind == "Secret" and number == 2:
            key, val = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(val).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = _text(value)
        elif kind == "Secret" and number == 4:
            key, val = _entry(value)
            obj.setdefault("stringData", {})[key] = val.decode()
        elif kind == "ConfigMap" and number == 2:
            key, val = _entry(value)
            obj.setdefault("data", {})[key] = val.decode()
        elif kind == "ConfigMap" and number == 3:
            key, val = _entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(val).decode()
        elif number == 5 and isinstance(value, int):
            obj["immutable"] = bool(value)
    obj.setdefault("metadata", {})
    return obj
