"""Plain YAML scalars that YAML 1.1 and YAML 1.2 read differently, in catalogue files and templates.

The catalogue loader and the renderer read YAML 1.2 (yaml-rs), but much of the tooling a
template author or reviewer has in mind reads YAML 1.1 (PyYAML, go-yaml v2 in kubectl-era
tools, editors). ``defaultMode: 0555`` is octal 365 there and decimal 555 here, which
the kube-apiserver refuses (a mode is at most 0777). So an unquoted scalar the two
versions disagree on is an error whatever the renderer makes of it: the author writes
the value so that every reader agrees, and the message says how.

Templates are checked on their source. Every Jinja2 construct is blanked first: a
``{{ … }}`` becomes a placeholder word, ``{% … %}`` and ``{# … #}`` become spaces, so
that nothing a template computes can be taken for a trap, and lines and columns stay
those of the source. Only the delimiters of the renderer's environment (the Jinja2
defaults) are known here, not Jinja2 itself.

This module must not know about Kubernetes, the renderer or the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import yaml

from controlplane.catalog.models import TemplateBundle
from controlplane.errors import ErrorItem

# libyaml when available (about 20 times faster); the events are the same.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Stands in for each character of a ``{{ … }}`` on its first line: a letter no number,
#: boolean or time can contain, and that cannot end or start a YAML structure.
PLACEHOLDER = "¤"
_PLACEHOLDER_RUN = re.compile(f"{PLACEHOLDER}+")
_CLOSERS = {"{": "}}", "%": "%}", "#": "#}"}

# YAML 1.1 booleans that YAML 1.2 (core schema) reads as strings. true/false in their
# three spellings are booleans in both.
_BOOLEANS_1_1 = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_OCTAL_DIGITS = re.compile(r"[-+]?0[0-7]+")
_OCTAL_1_2 = re.compile(r"[-+]?0o[0-7]+")
_BINARY_1_1 = re.compile(r"[-+]?0b[01_]+")
_UNDERSCORED_1_1 = re.compile(r"[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)")
# YAML 1.1 base 60: an integer starts with 1-9, a float may start with 0 and has a dot.
_SEXAGESIMAL_INT = re.compile(r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")
_SEXAGESIMAL_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*")


class TrapRule(StrEnum):
    """The kinds of ambiguous plain scalars (their values name them in the docs)."""

    LEADING_ZERO = "leading-zero"
    OCTAL_PREFIX = "octal-prefix"
    BOOLEAN = "yaml11-boolean"
    SEXAGESIMAL = "sexagesimal"
    NUMBER = "yaml11-number"


@dataclass(frozen=True)
class Trap:
    """One ambiguous plain scalar: where it is (1-based) and why it is a problem."""

    line: int
    column: int
    #: The key path of the scalar (``spec.template.spec.volumes[1].configMap.defaultMode``).
    path: str
    #: ``Kind/name`` of the document, when the document says so in plain text.
    document: str
    text: str
    rule: TrapRule
    message: str

    def error(self, file: str) -> ErrorItem:
        """As an error at ``file:LINE:COLUMN: [Kind/name: ]key path``."""
        where = f"{self.document}: {self.path}" if self.document else self.path
        return ErrorItem(f"{file}:{self.line}:{self.column}: {where}", self.message)


def trap_of(text: str, *, key: bool = False) -> tuple[TrapRule, str] | None:
    """Why the plain scalar ``text`` is read differently by YAML 1.1 and 1.2, or ``None``."""
    what = f"the key {text}" if key else text
    if _LEADING_ZERO.fullmatch(text):
        decimal = int(text)
        if _OCTAL_DIGITS.fullmatch(text):
            octal = int(text.lstrip("+-"), 8) * (-1 if text.startswith("-") else 1)
            if octal == decimal:
                return TrapRule.LEADING_ZERO, (
                    f"{what} has a leading zero, which means octal in YAML 1.1 and decimal in "
                    f"YAML 1.2 (both read {decimal} here, by luck). Write {decimal}, or quote "
                    f'it ("{text}") if it is a string'
                )
            return TrapRule.LEADING_ZERO, (
                f"{what} has a leading zero: YAML 1.2 (the renderer) reads decimal {decimal}, "
                f"YAML 1.1 reads octal {text} = {octal}. Write the number in decimal "
                f"({octal} # {text} if the octal was meant, {decimal} if not), or quote it "
                f'("{text}") if it is a string'
            )
        return TrapRule.LEADING_ZERO, (
            f"{what} has a leading zero: YAML 1.2 (the renderer) reads the number {decimal}, "
            f'YAML 1.1 the string "{text}". Write {decimal} for the number, or quote it '
            f'("{text}") for the string'
        )
    if _OCTAL_1_2.fullmatch(text):
        value = int(text.replace("0o", "", 1), 8)
        return TrapRule.OCTAL_PREFIX, (
            f"{what} is octal {value} in YAML 1.2 (the renderer) but the string "
            f'"{text}" in YAML 1.1. Write it in decimal: {value} # {text}'
        )
    if text in _BOOLEANS_1_1:
        boolean = "true" if _BOOLEANS_1_1[text] else "false"
        return TrapRule.BOOLEAN, (
            f'{what} is the string "{text}" in YAML 1.2 (the renderer) but the boolean '
            f'{boolean} in YAML 1.1. Quote it ("{text}") if it is a string, or write '
            f"{boolean} if it is a boolean"
        )
    if _SEXAGESIMAL_INT.fullmatch(text) or _SEXAGESIMAL_FLOAT.fullmatch(text):
        return TrapRule.SEXAGESIMAL, (
            f'{what} is the string "{text}" in YAML 1.2 (the renderer) but the base-60 number '
            f'{_base60(text)} in YAML 1.1. Quote it ("{text}")'
        )
    if _BINARY_1_1.fullmatch(text) or ("_" in text and _UNDERSCORED_1_1.fullmatch(text)):
        return TrapRule.NUMBER, (
            f"{what} is a number in YAML 1.1 but not in YAML 1.2 (parsers disagree on "
            f"binary 0b… and digits with '_'). Write the number in plain decimal, or quote "
            f'it ("{text}") if it is a string'
        )
    return None


def _base60(text: str) -> str:
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        total = total * 60 + float(part)
    value = sign * total
    return str(int(value)) if value.is_integer() and "." not in text else str(value)


def mask_template(source: str) -> str:
    """The template's YAML with every Jinja2 construct blanked; same lines and columns.

    ``{{ … }}`` → a word of :data:`PLACEHOLDER` (one value, as the renderer emits one
    JSON value); ``{% … %}`` and ``{# … #}`` → spaces (they emit nothing themselves).
    Quotes inside a construct are skipped, so ``{{ "}}" }}`` is one construct.
    """
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        start = source.find("{", i)
        if start < 0 or start + 1 >= n:
            out.append(source[i:])
            break
        opener = source[start + 1]
        if opener not in _CLOSERS:
            out.append(source[i : start + 1])
            i = start + 1
            continue
        out.append(source[i:start])
        end = _construct_end(source, start + 2, _CLOSERS[opener], quotes=opener != "#")
        construct = source[start:end]
        out.append(_blank_expression(construct) if opener == "{" else _blank(construct))
        i = end
    return "".join(out)


def _construct_end(source: str, i: int, closer: str, *, quotes: bool) -> int:
    quote: str | None = None
    n = len(source)
    while i < n:
        char = source[i]
        if quote is not None:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif quotes and char in "'\"":
            quote = char
        elif source.startswith(closer, i):
            return i + len(closer)
        i += 1
    return n  # unclosed: the renderer reports the syntax error


def _blank(construct: str) -> str:
    return "".join(char if char == "\n" else " " for char in construct)


def _blank_expression(construct: str) -> str:
    first, *rest = construct.split("\n")
    if not rest:
        return PLACEHOLDER * len(construct)
    # A multi-line expression: the word on its first line, its other lines empty, and the
    # text after it keeps its column.
    return PLACEHOLDER * len(first) + "\n" * len(rest) + " " * len(rest[-1])


@dataclass
class _Frame:
    mapping: bool
    key: str | None = None
    expect_key: bool = True
    index: int = -1


@dataclass
class _Document:
    traps: list[Trap] = field(default_factory=list)
    kind: str = ""
    name: str = ""


def find_traps(text: str) -> list[Trap]:
    """Every ambiguous plain scalar (key or value) of a YAML text, in order.

    Quoted scalars and scalars with an explicit tag (``!!str 0555``) are never traps.
    If the text stops being YAML somewhere, the traps before that point are returned
    (the loader or the renderer reports the syntax error itself).
    """
    found: list[Trap] = []
    document = _Document()
    frames: list[_Frame] = []
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.DocumentStartEvent):
                document, frames = _Document(), []
            elif isinstance(event, yaml.DocumentEndEvent):
                found.extend(_labelled(document))
                document = _Document()
            elif isinstance(event, yaml.ScalarEvent):
                _scalar(event, frames, document)
            elif isinstance(event, yaml.AliasEvent):
                _enter(frames)
                _leave(frames)
            elif isinstance(event, yaml.CollectionStartEvent):
                top = _enter(frames)
                if top is not None and top.mapping and top.expect_key:
                    top.key = "(complex key)"
                frames.append(_Frame(mapping=isinstance(event, yaml.MappingStartEvent)))
            elif isinstance(event, yaml.CollectionEndEvent):
                if frames:
                    frames.pop()
                _leave(frames)
    except yaml.YAMLError:
        pass
    found.extend(_labelled(document))
    return found


def _enter(frames: list[_Frame]) -> _Frame | None:
    """A node starts in the innermost collection: count it; return that collection."""
    top = frames[-1] if frames else None
    if top is not None and not top.mapping:
        top.index += 1
    return top


def _leave(frames: list[_Frame]) -> None:
    """A node ended: in a mapping, a key is followed by a value and a value by a key."""
    if frames and frames[-1].mapping:
        frames[-1].expect_key = not frames[-1].expect_key


def _scalar(event: yaml.ScalarEvent, frames: list[_Frame], document: _Document) -> None:
    top = _enter(frames)
    is_key = top is not None and top.mapping and top.expect_key
    value = event.value
    if is_key and top is not None:
        top.key = _PLACEHOLDER_RUN.sub("{{…}}", value)
    path = _path(frames)
    plain = event.style in (None, "") and event.implicit[0]
    if plain and not is_key and len(frames) <= 2:
        if path == "kind":
            document.kind = value
        elif path == "metadata.name":
            document.name = value
    problem = trap_of(value, key=is_key) if plain else None
    mark = event.start_mark
    if problem is not None and mark is not None:
        document.traps.append(
            Trap(
                line=mark.line + 1,
                column=mark.column + 1,
                path=path,
                document="",
                text=value,
                rule=problem[0],
                message=problem[1],
            )
        )
    _leave(frames)


def _path(frames: list[_Frame]) -> str:
    out = ""
    for frame in frames:
        if frame.mapping:
            if frame.key is not None:
                out += f".{frame.key}" if out else frame.key
        elif frame.index >= 0:
            out += f"[{frame.index}]"
    return out or "(top level)"


def _labelled(document: _Document) -> list[Trap]:
    """The document's traps, named by its ``Kind/name`` when it wrote both plainly."""
    if not (document.kind and document.name):
        return document.traps
    label = f"{document.kind}/{_PLACEHOLDER_RUN.sub('{{…}}', document.name)}"
    return [replace(trap, document=label) for trap in document.traps]


def template_traps(source: str) -> list[Trap]:
    """The traps of a template's own text (what its Jinja2 constructs emit never counts)."""
    return find_traps(mask_template(source))


def file_errors(path: Path, shown: str) -> list[ErrorItem]:
    """The traps of a catalogue file as errors at ``shown:LINE:COLUMN: key path``.

    A file that cannot be read as text has none here: loading reports it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [trap.error(shown) for trap in find_traps(text)]


def bundle_errors(bundle: TemplateBundle, folder: str) -> list[ErrorItem]:
    """The traps of every file of a template bundle, at ``templates/<folder>/<file>:…``."""
    return [
        trap.error(f"templates/{folder}/{name}")
        for name, source in sorted(bundle.files.items())
        for trap in template_traps(source)
    ]
