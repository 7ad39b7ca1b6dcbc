"""The server secret: the one key from which every generated credential is derived.

Every process of one installation — the API (admission renders with it), ``controlplane
serve`` with its embedded worker and every ``controlplane worker`` — must use the same
secret, or the credentials in the rendered Secrets change from one process to the next.
They all call :func:`resolve_server_secret`, and nothing else reads the secret.

This module must not know about HTTP, Typer or the database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile

from controlplane.errors import InvalidInput
from controlplane.settings import Settings


class ServerSecretUnreadable(InvalidInput):
    """The server secret file exists but holds no secret."""

    title = "Server secret unreadable"
    code = "server_secret_unreadable"


SERVER_SECRET_FILE = "server-secret"  # noqa: S105 - a file name, not a secret


def resolve_server_secret(settings: Settings) -> bytes:
    """The configured server secret, or one generated once and kept in the data directory.

    Every process of one installation (the API, ``controlplane serve`` and every
    ``controlplane worker``) calls this one function, so generated credentials are the same
    everywhere. In production set ``CONTROLPLANE_SERVER_SECRET``; otherwise the first process
    writes a random ``<data_dir>/server-secret`` (mode 0600) and the others read it.
    """
    configured = settings.server_secret.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.data_dir / SERVER_SECRET_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Written in full under a private name, then linked into place: a process starting at
        # the same moment sees either no file or the whole secret, never an empty one.
        fd, temporary = tempfile.mkstemp(dir=settings.data_dir, prefix=".server-secret-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            # FileExistsError: another process created it first; use theirs.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    secret = path.read_text().strip()
    if not secret:
        raise ServerSecretUnreadable(
            f"The server secret file {path} is empty.",
            hint="Restore it from the backup of the data directory, or set "
            "CONTROLPLANE_SERVER_SECRET (changing it changes every generated credential).",
        )
    return secret.encode()
