"""cityctl: the self-service command line of City Platform (talks HTTP only)."""

from __future__ import annotations

import typer

app = typer.Typer(name="cityctl", help="City Platform self-service CLI.", no_args_is_help=True)
