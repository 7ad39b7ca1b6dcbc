"""`cityctl login`, `cityctl whoami`, `cityctl context list | use`."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

import typer

from cli.client import ApiClient
from cli.config import Context, load_config, save_config
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

context_app = typer.Typer(
    help="List and switch contexts (server + token pairs).", no_args_is_help=True
)


def login(
    server: Annotated[
        str | None,
        typer.Option(
            help="Control-plane URL, e.g. https://cityplatform.example.be.",
            envvar="CITYCTL_SERVER",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="API token (shown once when it was created).", envvar="CITYCTL_TOKEN"),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="Name for this context (default: the server's host)."),
    ] = None,
) -> None:
    """Log in: check the token against the server and save it as the current context.

    Example: cityctl login --server http://127.0.0.1:8080 --token cp_ab12cd34_…
    """
    # Missing options are refused here rather than by typer, so that they read like every
    # other cityctl failure (one error line and a hint).
    if not server:
        raise CliError(
            "No server to log in to.",
            exit_code=ExitCode.USAGE,
            hint="Give --server URL or set CITYCTL_SERVER, e.g. --server http://127.0.0.1:8080.",
        )
    if not token:
        raise CliError(
            "No token to log in with.",
            exit_code=ExitCode.USAGE,
            hint="Give --token or set CITYCTL_TOKEN (an operator creates tokens with "
            "`cityctl token create`).",
        )
    candidate = Context(server=server, token=token)
    with ApiClient(candidate, timeout=state.timeout) as client:
        me = client.get_json("/api/v1/whoami")
    name = context or (urlparse(server).hostname or "default")
    config = load_config()
    config.contexts[name] = candidate
    config.current_context = name
    path = save_config(config)
    tenant = f" for tenant {me['tenant']}" if me.get("tenant") else ""
    stderr.print(
        f"Logged in to {server} as {me.get('actor')} ({me.get('role')}{tenant}); "
        f"context {name!r} saved in {path}."
    )


def whoami(output: OutputOpt = Format.TABLE) -> None:
    """Show who the current token belongs to: name, role, tenant.

    Example: cityctl whoami -o json
    """
    with state.client() as client:
        me = client.get_json("/api/v1/whoami")
    emit(
        me,
        output,
        [("actor", "ACTOR"), ("token_name", "TOKEN"), ("role", "ROLE"), ("tenant", "TENANT")],
    )


@context_app.command("list")
def context_list(output: OutputOpt = Format.TABLE) -> None:
    """List the saved contexts; the current one is marked.

    Example: cityctl context list
    """
    config = load_config()
    rows = [
        {"name": name, "server": ctx.server, "current": name == config.current_context}
        for name, ctx in sorted(config.contexts.items())
    ]
    emit(rows, output, [("name", "NAME"), ("server", "SERVER"), ("current", "CURRENT")])


@context_app.command("use")
def context_use(name: Annotated[str, typer.Argument(help="Context to make current.")]) -> None:
    """Make another saved context the current one.

    Example: cityctl context use production
    """
    config = load_config()
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise CliError(
            f"There is no context {name!r}.",
            exit_code=ExitCode.USAGE,
            hint=f"Known contexts: {known}.",
        )
    config.current_context = name
    save_config(config)
    stderr.print(f"Switched to context {name!r}.")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(whoami)
    app.add_typer(context_app, name="context")
