"""Errors of authentication and tokens."""

from __future__ import annotations

from controlplane.errors import Conflict, InvalidInput, NotFound, Unauthenticated


class InvalidToken(Unauthenticated):
    """The bearer token is missing, malformed, unknown, expired or revoked."""

    title = "Invalid token"
    code = "invalid_token"


class TokenNotFound(NotFound):
    """There is no such API token."""

    title = "Token not found"
    code = "token_not_found"


class TokenInvalid(InvalidInput):
    """The token request is not valid."""

    title = "Invalid token request"
    code = "token_invalid"


class OperatorTokenExists(Conflict):
    """An operator token already exists; bootstrap runs once."""

    title = "Already bootstrapped"
    code = "already_bootstrapped"
