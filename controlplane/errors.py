"""The one error hierarchy of the control plane.

Every failure a person can act on is a :class:`ControlPlaneError`. The class says
*what kind* of failure it is (and so which HTTP status and CLI exit code it maps to);
the instance says what went wrong here and, where possible, what to do about it.
Third-party errors are wrapped at the boundary and chained as the cause, so that
nothing outside this module decides how an error looks to a user.

This module must not know about FastAPI, Typer or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One precise problem inside a larger failure: where it is and what is wrong.

    ``location`` is a path a person can follow: a file and key path for catalogue
    errors (``catalog/keycloak.yaml: versions[1].upgrade_from``), a field path for
    request bodies (``parameters.hostname``).
    """

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


@dataclass(eq=False)
class ControlPlaneError(Exception):
    """Something went wrong in the control plane."""

    detail: str = ""
    hint: str | None = None
    errors: list[ErrorItem] = field(default_factory=list)
    #: Extra members for the problem document (for example the conflicting resource).
    extra: dict[str, Any] = field(default_factory=dict)

    #: HTTP status of the problem document (the API adapter reads it).
    status: ClassVar[int] = 500
    #: Short, stable title of this kind of problem.
    title: ClassVar[str] = "Internal error"
    #: Stable machine-readable code (also used by cityctl for exit codes).
    code: ClassVar[str] = "internal"

    def __post_init__(self) -> None:
        if not self.detail:
            self.detail = (type(self).__doc__ or self.title).strip().splitlines()[0]
        super().__init__(self.detail)

    def __str__(self) -> str:
        lines = [self.detail, *(f"  - {item}" for item in self.errors)]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class InvalidInput(ControlPlaneError):
    """The request or file is not valid."""

    status = 422
    title = "Invalid input"
    code = "invalid"


class NotFound(ControlPlaneError):
    """The resource does not exist (or is not visible to you)."""

    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(ControlPlaneError):
    """The request conflicts with the current state."""

    status = 409
    title = "Conflict"
    code = "conflict"


class PreconditionFailed(ControlPlaneError):
    """The resource changed since you read it."""

    status = 412
    title = "Precondition failed"
    code = "precondition_failed"


class Unauthenticated(ControlPlaneError):
    """No valid credentials were presented."""

    status = 401
    title = "Unauthenticated"
    code = "unauthenticated"


class Forbidden(ControlPlaneError):
    """Your role does not allow this."""

    status = 403
    title = "Forbidden"
    code = "forbidden"


class Unavailable(ControlPlaneError):
    """A dependency of the control plane is not available right now."""

    status = 503
    title = "Service unavailable"
    code = "unavailable"
