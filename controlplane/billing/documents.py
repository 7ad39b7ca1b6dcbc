"""One converter between billing's frozen values and their JSON documents, both ways.

A statement set is stored (closed), digested and answered as a JSON document; reading a
stored document back must give the very value that was closed. Rather than a hand-written
writer and reader per class that can drift apart, :func:`to_document` and
:func:`from_document` walk the dataclass fields and their type hints. What is special about a
field is said once, next to it, with :func:`doc`:

- ``key``: its name in the document (``start`` is ``from``);
- ``omit_default``: left out while it has its default (so that documents closed before the
  field existed stay as they were, digest included);
- ``flatten``: a nested value whose keys sit in the parent's document;
- ``cents``: whole cents written as a money amount (``1234`` is ``"12.34"``).

A class may add derived keys (``document_extras()``: written, never read back, e.g. totals)
and fix the order of the keys (``document_order``). Scalars: ``Decimal`` as its string,
``Fraction`` as ``n/d``, an aware ``datetime`` as UTC ISO 8601 with ``Z``, a ``Period`` as
``YYYY-MM``, a ``StrEnum`` as its value.

This module must not know about any one billing class, the database, FastAPI or Typer.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any, Union, get_args, get_origin, get_type_hints

from controlplane.billing.money import cents_of, fraction_text, from_cents
from controlplane.billing.periods import Period

_KEY = "document_key"
_OMIT_DEFAULT = "document_omit_default"
_FLATTEN = "document_flatten"
_CENTS = "document_cents"


def doc(
    *,
    key: str | None = None,
    omit_default: bool = False,
    flatten: bool = False,
    cents: bool = False,
) -> dict[str, Any]:
    """A field's ``metadata`` for its document (see the module): ``field(metadata=doc(…))``."""
    return {_KEY: key, _OMIT_DEFAULT: omit_default, _FLATTEN: flatten, _CENTS: cents}


def iso(value: datetime) -> str:
    """The documents' spelling of a moment: UTC, ISO 8601, ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: Scalar type -> (to document, from document).
_SCALARS: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    Decimal: (str, lambda text: Decimal(_text(text))),
    Fraction: (fraction_text, lambda text: Fraction(_text(text))),
    datetime: (iso, lambda text: datetime.fromisoformat(_text(text))),
    Period: (str, lambda text: Period.parse(_text(text))),
}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def to_document(value: Any) -> Any:
    """The JSON-ready document of ``value`` (a billing dataclass, or a list, or a scalar)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return value.value
    for kind, (write, _) in _SCALARS.items():
        if isinstance(value, kind):
            return write(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _object_document(value)
    if isinstance(value, (tuple, list)):
        return [to_document(item) for item in value]
    if isinstance(value, (int, str)):
        return value
    raise TypeError(f"no document form for {type(value).__name__}")


def _object_document(value: Any) -> dict[str, Any]:
    plan = _plan(type(value))
    body: dict[str, Any] = {}
    for f in plan.fields:
        item = getattr(value, f.name)
        if f.omit_default and item == f.field.default:
            continue
        if f.flatten:
            body.update(_object_document(item))
        else:
            body[f.key] = f.write(item)
    if plan.extras:
        body.update({key: to_document(item) for key, item in value.document_extras().items()})
    if plan.order is not None:
        order = plan.order
        body = {key: body[key] for key in order if key in body} | {
            key: item for key, item in body.items() if key not in order
        }
    return body


def _writer(hint: Any) -> Callable[[Any], Any]:
    """How a field of type ``hint`` is written (chosen once per field, not per value)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            inner = _writer(options[0])
            return lambda value: None if value is None else inner(value)
    elif origin is tuple:
        item = _writer(get_args(hint)[0])
        return lambda value: [item(entry) for entry in value]
    elif isinstance(hint, type):
        if issubclass(hint, Enum):
            return lambda value: value.value if isinstance(value, Enum) else value
        if hint in _SCALARS:
            return _SCALARS[hint][0]
        if dataclasses.is_dataclass(hint):
            return _object_document
        if hint in (int, str):
            return lambda value: value
    return to_document


def from_document[T](cls: type[T], document: Mapping[str, Any]) -> T:
    """The ``cls`` value written as ``document`` (derived keys are ignored).

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` (or the class's own refusal) on a
    document that is not one of ``cls``.
    """
    if not isinstance(document, Mapping):
        raise TypeError(f"{cls.__name__}: expected an object, got {document!r}")
    kwargs: dict[str, Any] = {}
    for plan in _plan(cls).fields:
        if plan.flatten:
            kwargs[plan.name] = from_document(plan.hint, document)
            continue
        if plan.key not in document:
            if plan.field.default is not dataclasses.MISSING:
                continue  # written only when it is not the default
            raise KeyError(plan.key)
        kwargs[plan.name] = plan.read(document[plan.key])
    return cls(**kwargs)


def _reader(hint: Any) -> Callable[[Any], Any]:
    """How a field of type ``hint`` is read (chosen once per field, not per value)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1 and len(get_args(hint)) == 2:
            inner = _reader(options[0])
            return lambda raw: None if raw is None else inner(raw)
    elif origin is tuple and get_args(hint)[1:] == (Ellipsis,):
        item = _reader(get_args(hint)[0])

        def read_tuple(raw: Any) -> tuple[Any, ...]:
            if not isinstance(raw, list):
                raise TypeError(f"expected a list, got {raw!r}")
            return tuple(item(entry) for entry in raw)

        return read_tuple
    elif isinstance(hint, type):
        if issubclass(hint, Enum):
            return hint
        if hint in _SCALARS:
            return _SCALARS[hint][1]
        if dataclasses.is_dataclass(hint):
            return lambda raw: from_document(hint, raw)
        if hint in (int, str):
            kind = hint

            def read_plain(raw: Any) -> Any:
                if not isinstance(raw, kind) or isinstance(raw, bool):
                    raise TypeError(f"expected {kind.__name__}, got {raw!r}")
                return raw

            return read_plain

    def unreadable(raw: Any) -> Any:
        raise TypeError(f"no document form for fields of type {hint}")

    return unreadable


def _read_cents(raw: Any) -> int:
    return cents_of(Decimal(_text(raw)))


def _write_cents(cents: int) -> str:
    return str(from_cents(cents))


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    field: dataclasses.Field[Any]
    name: str
    key: str
    hint: Any
    write: Callable[[Any], Any]
    read: Callable[[Any], Any]
    omit_default: bool
    flatten: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _ClassPlan:
    fields: tuple[_FieldPlan, ...]
    #: Whether the class adds derived keys (``document_extras()``).
    extras: bool
    order: tuple[str, ...] | None


_PLANS: dict[type, _ClassPlan] = {}


def _no_reader(raw: Any) -> Any:
    raise AssertionError("a flattened field is read from its parent's document")


def _plan(cls: type) -> _ClassPlan:
    """What the converter needs to know of ``cls`` (worked out once per class)."""
    cached = _PLANS.get(cls)
    if cached is not None:
        return cached
    hints = get_type_hints(cls)
    fields = tuple(
        _FieldPlan(
            field=f,
            name=f.name,
            key=f.metadata.get(_KEY) or f.name,
            hint=hints[f.name],
            write=_write_cents if f.metadata.get(_CENTS) else _writer(hints[f.name]),
            read=_read_cents
            if f.metadata.get(_CENTS)
            else (_no_reader if f.metadata.get(_FLATTEN) else _reader(hints[f.name])),
            omit_default=bool(f.metadata.get(_OMIT_DEFAULT)),
            flatten=bool(f.metadata.get(_FLATTEN)),
        )
        for f in dataclasses.fields(cls)
        if f.init
    )
    plan = _ClassPlan(
        fields=fields,
        extras=callable(getattr(cls, "document_extras", None)),
        order=getattr(cls, "document_order", None),
    )
    _PLANS[cls] = plan
    return plan
