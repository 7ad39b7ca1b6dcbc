"""`controlplane catalog validate | render`: offline checks of the catalogue files."""

from __future__ import annotations

import typer

app = typer.Typer(help="Check and render the service catalogue offline.", no_args_is_help=True)
