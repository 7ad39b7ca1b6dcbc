"""`controlplane serve | migrate | bootstrap`: the API, the schema and the first token.

An adapter like ``api/``: it parses options, calls the domain and prints. Errors are
printed as the API prints problems (title, detail, items, hint) and exit with 1.
"""

from __future__ import annotations

import errno
import socket
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import make_url

from controlplane import migrations
from controlplane.auth import tokens
from controlplane.auth.errors import OperatorTokenExists
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.db.sessions import open_session
from controlplane.errors import ControlPlaneError
from controlplane.settings import Settings, get_settings

console = Console(stderr=True)


def _fail(exc: ControlPlaneError) -> None:
    console.print(f"[red]{exc.title}[/red]: {exc}")
    raise typer.Exit(1)


def migrate(
    revision: Annotated[str, typer.Option(help="Target revision (default: the newest).")] = "head",
) -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url())
    migrations.upgrade(engine, revision)
    console.print(f"database at revision {migrations.current_revision(engine)}")


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Serve the HTTP API (and, if configured, the embedded reconcile worker)."""
    import uvicorn

    from controlplane.api.app import create_app

    settings = get_settings()
    # Bound before anything starts (migrations, worker): a taken port is one line, not a
    # traceback after the worker already ran.
    listener = _listen(host or settings.host, port or settings.port)
    engine = make_engine(settings.resolved_database_url())
    if engine.dialect.name == "sqlite":
        # The embedded default migrates itself; PostgreSQL is migrated by `controlplane migrate`.
        migrations.upgrade(engine)
    elif not migrations.is_up_to_date(engine):
        console.print(
            "[red]The database schema is not up to date.[/red] Run `controlplane migrate` first."
        )
        raise typer.Exit(1)
    # With settings.embedded_worker (the default) the app's lifespan runs the reconcile
    # worker after start-up created the default target, and stops it on shutdown.
    app = create_app(settings, engine=engine)
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(
            settings.metrics_port, addr=host or settings.host, registry=app.state.metrics.registry
        )
    bound_host, bound_port = listener.getsockname()[:2]
    bound_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    # uvicorn does not announce a socket it was handed: say where the API and its data are.
    console.print(
        f"Listening on http://{bound_host}:{bound_port} (data directory "
        f"{settings.data_dir.expanduser().resolve()}, database "
        f"{_masked(settings.resolved_database_url())}).",
        highlight=False,
    )
    uvicorn.Server(
        uvicorn_config(app, settings, host=host or settings.host, port=port or settings.port)
    ).run(sockets=[listener])


def _masked(database_url: str) -> str:
    """The database URL without its password (it goes to logs and terminals)."""
    return make_url(database_url).render_as_string(hide_password=True)


def _listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, or one clear line saying why there is none."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        reason = "is already in use" if taken else f"cannot be used ({exc.strerror or exc})"
        console.print(
            f"[red]error:[/red] port {port} on {host} {reason}; choose another with "
            "--port or CONTROLPLANE_PORT (and the address with --host or CONTROLPLANE_HOST).",
            highlight=False,
        )
        raise typer.Exit(1) from None
    listener.set_inheritable(True)
    return listener


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int) -> Any:
    """The server options: forwarded headers only from the configured proxies.

    uvicorn's default believes ``X-Forwarded-For`` from 127.0.0.1, so anything on the
    pod's loopback (or a sidecar) could forge the source IP of the audit log; here no peer
    is trusted unless ``forwarded_allow_ips`` names it.
    """
    import uvicorn

    trusted = settings.forwarded_allow_ips.strip()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or "",
        server_header=False,
        log_level="info",
    )


def bootstrap(
    name: Annotated[str, typer.Option(help="Name of the token.")] = "bootstrap-operator",
    expires_in_days: Annotated[
        int | None, typer.Option(help="Days until it expires (default: never).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Issue one even if an operator token exists.")
    ] = False,
) -> None:
    """Create and print the first operator token (shown once; only its hash is stored)."""
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url())
    if engine.dialect.name == "sqlite":
        migrations.upgrade(engine)
    try:
        for session in open_session(engine):
            existing = tokens.active_operator_tokens(session)
            if existing and not force:
                raise OperatorTokenExists(
                    f"{len(existing)} operator token(s) already exist "
                    f"({', '.join(t.name for t in existing)}).",
                    hint="Use an existing token, or run again with --force to issue another.",
                )
            issued = tokens.create_token(
                session,
                name=name,
                role=Role.OPERATOR,
                expires_in_days=expires_in_days,
                created_by="controlplane bootstrap",
            )
            session.commit()
    except ControlPlaneError as exc:
        _fail(exc)
        return
    database = _masked(settings.resolved_database_url())
    console.print(
        f"Operator token for the control plane on {database} (shown once, store it now):",
        highlight=False,
    )
    print(issued.token)


def register(app: typer.Typer) -> None:
    """Add the server commands to the top-level app."""
    app.command()(serve)
    app.command()(migrate)
    app.command()(bootstrap)
