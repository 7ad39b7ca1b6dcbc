"""`controlplane`: the server-side command line (an adapter, like `api/`).

This module only wires the sub-commands; each lives in its own module.
"""

from __future__ import annotations

import typer

from controlplane.commands import catalog, server, worker

app = typer.Typer(
    name="controlplane",
    help="City Platform control plane: serve the API, run workers, migrate, bootstrap, "
    "check the catalogue.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(catalog.app, name="catalog")
server.register(app)
worker.register(app)
