"""Failures of cityctl: a closed set of codes, each with an exit code, a message and a hint.

Scripts rely on the exit codes; they are documented in ``cityctl --help`` and docs/cli.md.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  #: the operation ran but failed (e.g. the instance ended Failed)
    USAGE = 2  #: wrong flags or arguments, or input the server rejected as invalid (422)
    AUTH = 3  #: not logged in, token invalid or expired, or the role does not allow it (401/403)
    NOT_FOUND = 4  #: the resource does not exist or is not visible to you (404)
    CONFLICT = 5  #: conflicts with the current state, or changed since read (409/412)
    SERVER = 6  #: the server failed or cannot be reached (5xx, connection errors)
    TIMEOUT = 7  #: --wait gave up before the operation finished


EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 operation failed, 2 usage or invalid input, 3 authentication or "
    "permission, 4 not found, 5 conflict, 6 server error or unreachable, 7 timeout."
)


class CliError(Exception):
    """A failure to report in one line, with a hint, and exit with its code."""

    def __init__(self, message: str, *, exit_code: ExitCode, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint


def exit_code_for_status(status: int) -> ExitCode:
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (409, 412):
        return ExitCode.CONFLICT
    if 400 <= status < 500:
        return ExitCode.USAGE
    return ExitCode.SERVER
