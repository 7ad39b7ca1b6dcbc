"""Contexts (server + token) kept in the user's config directory, kubectl style.

``CITYCTL_SERVER`` and ``CITYCTL_TOKEN`` override the current context; ``CITYCTL_CONFIG``
points at another file. The file holds tokens, so it is written with mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from platformdirs import user_config_dir
from pydantic import BaseModel, Field

from cli.errors import CliError, ExitCode


class Context(BaseModel):
    server: str
    token: str | None = None


class Config(BaseModel):
    current_context: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)


def config_path() -> Path:
    override = os.environ.get("CITYCTL_CONFIG")
    if override:
        return Path(override)
    return Path(user_config_dir("cityctl")) / "config.json"


def load_config() -> Config:
    path = config_path()
    if not path.exists():
        return Config()
    try:
        return Config.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CliError(
            f"The cityctl config file {path} is damaged.",
            exit_code=ExitCode.USAGE,
            hint="Fix or delete it, then run `cityctl login` again.",
        ) from exc


def save_config(config: Config) -> Path:
    """Write the config atomically; the file is 0600 whatever was there before.

    The temporary file gets a fresh unique name (``mkstemp``: ``O_CREAT|O_EXCL``, mode
    0600) in the same directory, so a stale or planted ``.tmp`` file, or one with a wider
    mode, is never reused; ``os.replace`` then swaps it in, so an existing 0644 config is
    replaced by a 0600 file rather than rewritten in place.
    """
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 already; say it, in case the platform's default differs.
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(config.model_dump(), indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def active_context(name: str | None = None) -> Context:
    """The context to use: ``--context``, else the current one, with env overrides on top."""
    config = load_config()
    chosen = name or config.current_context
    context = config.contexts.get(chosen) if chosen else None
    if name and context is None:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise CliError(
            f"There is no context {name!r}.",
            exit_code=ExitCode.USAGE,
            hint=f"Known contexts: {known}. Create one with `cityctl login`.",
        )
    server = os.environ.get("CITYCTL_SERVER") or (context.server if context else None)
    token = os.environ.get("CITYCTL_TOKEN") or (context.token if context else None)
    if not server:
        raise CliError(
            "No server is configured.",
            exit_code=ExitCode.AUTH,
            hint="Run `cityctl login --server URL --token TOKEN` or set CITYCTL_SERVER.",
        )
    return Context(server=server, token=token)
