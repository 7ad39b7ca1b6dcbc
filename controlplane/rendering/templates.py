"""The Jinja2 sandbox that turns a template bundle into YAML text, injection-proof.

Every ``{{ … }}`` goes through :func:`emit`, which writes exactly one JSON value (and
JSON is YAML). A parameter value therefore always lands as one scalar, list or mapping
where the template put it: it can never add keys, objects or documents, whatever quotes,
newlines, ``---``, ``{{``, anchors or tags it contains. Characters that YAML (but not
JSON) treats as line breaks or forbids raw are escaped as ``\\uXXXX`` too.

Templates render from the in-memory :class:`TemplateBundle` of a release, never from
files; each bundle is compiled once (by digest) and kept in a bounded LRU cache.
Files whose name starts with ``_`` are partials (macros, includes) and render nothing
on their own.

**Components** (``_components/<name>.yaml.j2``, shared by services and frozen into each
release's bundle by ``catalog.loading``) are whole objects with typed inputs. A template
writes ``{{ component("postgres", database="openzaak") }}``; the component's first lines
declare its inputs as a JSON Schema in a Jinja comment::

    {#- component: postgres
    inputs:
      database: {type: string, pattern: "^[a-z][a-z0-9_]*$", description: …}
    required: [database]
    -#}

A call is checked against that schema (unknown, missing or mistyped inputs are refused
with the caller's file and line), the component renders with the caller's context plus
``inputs``, and its text is inserted as it is: it is template output, not a value. An
input that the component never reads is refused when the bundle is compiled.

This module must not know about Kubernetes: it returns text per template file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import types
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import jinja2
import jinja2.bccache
import jinja2.nodes
import jsonschema_rs
import yaml_rs
from jinja2.sandbox import ImmutableSandboxedEnvironment

from controlplane.catalog.models import TemplateBundle
from controlplane.errors import ErrorItem
from controlplane.rendering.errors import TemplateInvalid

#: Characters JSON writes raw but YAML reads as line breaks, BOMs or non-printables.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class Composed(str):
    """The text of a component: template output, inserted as it is (see :func:`emit`)."""

    __slots__ = ()


def emit(value: Any) -> str:
    """The ``finalize`` of the environment: one JSON value per expression.

    The one exception is a component's text (:class:`Composed`): it comes from a template
    of the bundle, and every value inside it already went through this function.
    """
    kind = type(value)
    if kind is Composed:
        return str(value)
    # Strings and integers are most expressions: written as ``json.dumps`` writes them,
    # without building an encoder per expression (5 % of a render, measured).
    if kind is str:
        text = encode_basestring(value)
    elif kind is int:
        text = int.__repr__(value)
    else:
        if isinstance(value, jinja2.Undefined):
            # StrictUndefined raises here with the name of what is missing.
            str(value)
        text = _JSON.encode(value)
    if text.isascii() and "\x7f" not in text:
        return text  # nothing YAML reads differently: no regex (3 % of a render, measured)
    return _YAML_UNSAFE.sub(_escape, text)


def _not_json(value: Any) -> Any:
    raise TypeError(
        f"an expression gives a {type(value).__name__}, which is not a JSON value "
        "(use a string, number, boolean, list or mapping)"
    )


_JSON = json.JSONEncoder(ensure_ascii=False, default=_not_json)
#: Names that are attributes of every ``dict`` (``items``, ``get``, …).
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a short way to ``mapping.key`` on plain dicts."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries the attribute first and takes the item when that raises; for a plain
        # dict and a name no dict has as attribute the outcome is known without raising
        # (most lookups of a render: ``params.hostname``, ``inputs.database``).
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def make_environment(
    bundle: Mapping[str, str], bytecode: SharedBytecode | None = None
) -> ImmutableSandboxedEnvironment:
    """The one configuration of the sandbox, loading from the bundle's text only.

    ``bytecode``: where compiled templates are shared with other processes that use this
    same configuration (the render processes)."""
    env = _Sandbox(
        loader=_BundleLoader(bundle),
        bytecode_cache=bytecode,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=emit,
        auto_reload=False,
        keep_trailing_newline=True,
        # Every template compiled once; the bundle cache bounds the total.
        cache_size=-1,
    )
    env.globals["component"] = _Components(bundle)
    return env


COMPONENTS = "_components/"
_DECLARATION = re.compile(r"\A\{#-?\s*component:[^\n]*\n(.*?)-?#\}", re.DOTALL)


class ComponentInputInvalid(jinja2.TemplateRuntimeError):
    """A component was called with inputs its declaration refuses."""


@dataclass(frozen=True)
class _Declaration:
    inputs: dict[str, Any]
    validator: Any  # jsonschema_rs validator of the inputs


def declaration(source: str) -> dict[str, Any] | None:
    """The inputs declaration at the top of a component file, None if it has none."""
    match = _DECLARATION.match(source)
    if match is None:
        return None
    loaded = yaml_rs.loads(match.group(1))
    return loaded if isinstance(loaded, dict) else None


class _Components:
    """The ``component(name, **inputs)`` function of one bundle's environment."""

    def __init__(self, bundle: Mapping[str, str]) -> None:
        self._bundle = bundle
        self._declarations: dict[str, _Declaration] = {}

    def _declared(self, name: str) -> _Declaration:
        known = self._declarations.get(name)
        if known is not None:
            return known
        source = self._bundle.get(f"{COMPONENTS}{name}.yaml.j2")
        if source is None:
            raise jinja2.TemplateRuntimeError(f"there is no component {name!r}")
        declared = declaration(source) or {}
        inputs = dict(declared.get("inputs") or {})
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": inputs,
            "required": list(declared.get("required") or []),
        }
        known = _Declaration(inputs=inputs, validator=jsonschema_rs.validator_for(schema))
        self._declarations[name] = known
        return known

    @jinja2.pass_context
    def __call__(self, context: Any, name: str, /, **given: Any) -> Composed:
        # ``name`` is positional-only, so a component may have an input called ``name``.
        declared = self._declared(name)
        if not declared.validator.is_valid(given):  # the messages only when refused
            problems = [
                f"{'.'.join(str(p) for p in e.instance_path) or 'inputs'}: {e.message}"
                for e in declared.validator.iter_errors(given)
            ]
            raise ComponentInputInvalid(
                f"component {name!r} refuses these inputs: {'; '.join(problems)}"
            )
        inputs = {
            key: given[key] if key in given else spec.get("default")
            for key, spec in declared.inputs.items()
            if key in given or "default" in spec
        }
        template = context.environment.get_template(f"{COMPONENTS}{name}.yaml.j2")
        return Composed(template.render({**context.get_all(), "inputs": inputs}))


@dataclass(frozen=True)
class CompiledBundle:
    """The templates of one bundle, compiled, in rendering order."""

    folder: str
    templates: tuple[tuple[str, jinja2.Template], ...]

    def location(self, file: str, line: int | None = None) -> str:
        if file.startswith(COMPONENTS):
            where = f"templates/{file}"  # shared: not the service's folder
        else:
            where = f"templates/{self.folder}/{file}" if self.folder else file
        return f"{where}:{line}" if line else where

    def render(self, context: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(file, text)`` per template file; all failures raised at once."""
        out: list[tuple[str, str]] = []
        errors: list[ErrorItem] = []
        for name, template in self.templates:
            try:
                out.append((name, template.render(context)))
            except jinja2.TemplateError as exc:
                errors.append(self._item(name, exc))
            except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
                # json.dumps of a non-JSON value, a bad filter argument, …
                errors.append(self._item(name, exc))
        if errors:
            raise TemplateInvalid(
                "The templates of this service cannot be rendered.",
                errors=errors,
                hint="Fix the template at the named file and line.",
            )
        return out

    def _item(self, name: str, exc: BaseException) -> ErrorItem:
        line, file = _template_line(exc, name)
        message = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, jinja2.UndefinedError):
            message = f"undefined variable: {message}"
        return ErrorItem(self.location(file, line), message)


def _template_line(exc: BaseException, default_file: str) -> tuple[int | None, str]:
    """The template file and line an exception was raised at (Jinja rewrites tracebacks)."""
    line: int | None = None
    file = default_file
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(_FILE_PREFIX):
            file = filename.removeprefix(_FILE_PREFIX)
            line = tb.tb_lineno
        tb = tb.tb_next
    return line, file


# Compiled templates carry this prefix in their code's file name, so that the frames of
# a traceback that belong to templates can be told apart from the renderer's own.
_FILE_PREFIX = "<city-platform-template>/"


class _BundleLoader(jinja2.BaseLoader):
    """Loads from the bundle's text; code file names carry :data:`_FILE_PREFIX`."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self._files = dict(files)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        try:
            source = self._files[template]
        except KeyError:
            raise jinja2.TemplateNotFound(template) from None
        return source, _FILE_PREFIX + template, _always_current

    def list_templates(self) -> list[str]:
        return sorted(self._files)


def _always_current() -> bool:
    return True


def compile_bundle(
    bundle: Mapping[str, str],
    folder: str,
    *,
    lint: bool = True,
    bytecode: SharedBytecode | None = None,
) -> CompiledBundle:
    """Compile every file of a bundle; every syntax error is reported at once.

    ``lint``: also refuse a component input that the component never reads (what a
    publication checks; a published bundle passed it, so render processes skip it).
    """
    env = make_environment(bundle, bytecode)
    compiled: list[tuple[str, jinja2.Template]] = []
    errors: list[ErrorItem] = []
    location = CompiledBundle(folder=folder, templates=())
    for name in sorted(bundle):
        try:
            # The environment keeps what it compiled, so partials are compiled once too.
            template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            file = (exc.filename or name).removeprefix(_FILE_PREFIX)
            errors.append(ErrorItem(location.location(file, exc.lineno), exc.message or str(exc)))
            continue
        if name.startswith(COMPONENTS):
            if lint:
                errors.extend(_unused_inputs(env, name, bundle[name], location))
        elif not name.rsplit("/", 1)[-1].startswith("_"):
            compiled.append((name, template))
    if errors:
        raise TemplateInvalid(
            "The templates of this service have syntax errors.",
            errors=errors,
            hint="Fix the template at the named file and line.",
        )
    return CompiledBundle(folder=folder, templates=tuple(compiled))


def _unused_inputs(
    env: jinja2.Environment, name: str, source: str, location: CompiledBundle
) -> list[ErrorItem]:
    """A declared input that the component never reads is a mistake (it changes nothing)."""
    declared = declaration(source)
    if declared is None:
        return [
            ErrorItem(
                location.location(name, 1),
                "a component starts with its inputs declaration ({#- component: NAME … #})",
            )
        ]
    used = {
        node.attr
        for node in env.parse(source).find_all(jinja2.nodes.Getattr)
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "inputs"
    }
    return [
        ErrorItem(location.location(name, 1), f"input {key!r} is declared but never used")
        for key in sorted(set(declared.get("inputs") or {}) - used)
    ]


class SharedBytecode(jinja2.FileSystemBytecodeCache):
    """Compiled template code in a private folder, shared by the render processes.

    Each render process used to compile every release it rendered: about 0.1 s of CPU per
    release and process, a tenth of a cold fleet's render CPU (docs/benchmarks.md). Here
    the first process to compile a bundle writes its code and the others load it; one that
    needs a bundle another is compiling waits for it (``compiling``) rather than compile
    it too. Only processes whose environments are configured alike may share a folder
    (:func:`make_environment` is the one configuration).
    """

    def get_bucket(
        self, environment: jinja2.Environment, name: str, filename: str | None, source: str
    ) -> jinja2.bccache.Bucket:
        # Jinja keys a template's code by its name alone: templates of the same name in
        # two releases would take turns overwriting one file. The source's checksum in the
        # key gives each its own.
        checksum = self.get_source_checksum(source)
        bucket = jinja2.bccache.Bucket(
            environment, self.get_cache_key(f"{name}\0{checksum}", filename), checksum
        )
        self.load_bytecode(bucket)
        return bucket

    @contextlib.contextmanager
    def compiling(self, key: str) -> Iterator[None]:
        """Held while this process compiles the bundle ``key`` (a lock file per bundle)."""
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with open(os.path.join(self.directory, f"{name}.lock"), "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class BundleCache:
    """Compiled bundles by bundle digest, least recently used dropped first."""

    def __init__(
        self, size: int = 64, *, lint: bool = True, bytecode: SharedBytecode | None = None
    ) -> None:
        self._size = size
        self._lint = lint
        self._bytecode = bytecode
        self._items: OrderedDict[str, CompiledBundle] = OrderedDict()
        # Hashing the bundle text costs more than rendering a small stack, so the digest
        # is remembered per bundle object (kept alive here, so its id stays unique).
        self._digests: OrderedDict[int, tuple[TemplateBundle, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, bundle: TemplateBundle) -> str:
        hit = self._digests.get(id(bundle))
        if hit is not None and hit[0] is bundle:
            return hit[1]
        digest = bundle.digest
        with self._lock:
            self._digests[id(bundle)] = (bundle, digest)
            while len(self._digests) > self._size * 4:
                self._digests.popitem(last=False)
        return digest

    def get(self, bundle: TemplateBundle, folder: str) -> CompiledBundle:
        key = f"{self._digest(bundle)}:{folder}"
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        shared = self._bytecode
        with shared.compiling(key) if shared is not None else contextlib.nullcontext():
            compiled = compile_bundle(bundle.files, folder, lint=self._lint, bytecode=shared)
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return compiled
