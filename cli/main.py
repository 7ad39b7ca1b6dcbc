"""cityctl: the self-service command line of City Platform (talks HTTP only).

This module only wires the nouns; each lives in ``cli/commands/<noun>.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import cli.commands.billing_metering  # registers `billing rate` and `billing usage`
import cli.commands.billing_vat  # registers `billing vat`
import cli.commands.instance_backups  # registers `instance backups`
import cli.commands.instance_credentials  # noqa: F401  (registers `instance credentials`)
from cli.commands import audit, billing, catalog, fleet, instance, session, target, tenant, token
from cli.errors import EXIT_CODES_HELP, CliError
from cli.output import fail
from cli.state import state


class _Group(TyperGroup):
    """Turns every :class:`CliError` into one line, a hint and the documented exit code."""

    def invoke(self, ctx: Any) -> Any:  # click.Context (typer may vendor click)
        try:
            return super().invoke(ctx)
        except CliError as error:
            fail(error)


app = typer.Typer(
    name="cityctl",
    cls=_Group,
    help="City Platform self-service CLI for municipalities, operators and finance."
    f"\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
)


@app.callback()
def _global_options(
    context: Annotated[
        str | None,
        typer.Option("--context", help="Use this saved context instead of the current one."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="HTTP timeout in seconds.")] = 30.0,
) -> None:
    state.context_name = context
    state.timeout = timeout


session.register(app)
app.add_typer(catalog.app, name="catalog")
app.add_typer(tenant.app, name="tenant")
app.add_typer(instance.app, name="instance")
app.add_typer(target.app, name="target")
app.add_typer(token.app, name="token")
app.add_typer(audit.app, name="audit")
app.add_typer(billing.app, name="billing")
app.add_typer(fleet.app, name="fleet")
