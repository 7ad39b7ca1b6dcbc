"""Errors of rendering a service release into Kubernetes objects.

Each class is one kind of mistake, with its docstring as the default message. A render
collects every problem it finds and raises once, with one :class:`ErrorItem` per problem,
so that a catalogue author sees the whole list and nothing is ever half-returned.

This module must not know about Jinja2, YAML or JSON Schema libraries.
"""

from __future__ import annotations

from controlplane.errors import InvalidInput


class TemplateInvalid(InvalidInput):
    """A template of the service cannot be rendered (syntax error, undefined variable, bad YAML)."""

    title = "Invalid template"
    code = "template_invalid"


class ParameterInvalid(InvalidInput):
    """The parameters do not match the service's parameter schema."""

    title = "Invalid parameters"
    code = "parameter_invalid"


class ManifestInvalid(InvalidInput):
    """A rendered object is not valid for the Kubernetes version of the target."""

    title = "Invalid Kubernetes object"
    code = "manifest_invalid"


class PolicyViolation(InvalidInput):
    """A rendered object breaks the platform security policy."""

    title = "Security policy violation"
    code = "policy_violation"
