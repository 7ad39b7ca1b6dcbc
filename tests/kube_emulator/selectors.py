"""Label and field selectors as the API server parses them.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``,
comma-separated (all must hold). Field selectors: ``metadata.name`` and ``metadata.namespace``
with ``=``, ``==`` and ``!=``. Nothing here knows about HTTP or storage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """A selector the real server would reject with 400 Bad Request."""


_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_CMP_RE = re.compile(r"^\s*(?P<key>[^\s!=]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def _term(term: str) -> Predicate:
    if match := _SET_RE.match(term):
        key = match["key"]
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _CMP_RE.match(term):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_RE.match(term):
        key = match["key"]
        if match["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term.strip()!r}")


def label_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda _labels: True
    predicates = [_term(t) for t in _split_terms(selector)]
    return lambda labels: all(p(labels) for p in predicates)


def field_selector(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    if not selector:
        return lambda _obj: True
    checks: list[tuple[str, str, bool]] = []
    for term in _split_terms(selector):
        match = _CMP_RE.match(term)
        if not match:
            raise SelectorError(f"invalid field selector term: {term.strip()!r}")
        field = match["key"]
        if field not in ("metadata.name", "metadata.namespace"):
            raise SelectorError(f'field label not supported: "{field}"')
        checks.append((field.split(".", 1)[1], match["value"], match["op"] == "!="))

    def matches(obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return all((meta.get(f, "") == v) != negate for f, v, negate in checks)

    return matches
