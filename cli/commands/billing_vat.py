"""`cityctl billing vat list | set | remove`: finance's VAT rules per plan, pool or service.

A subject is ``plan:<service>/<plan>``, ``pool:<name>`` or ``service:<service>``; the most
specific rule of an invoice line wins, else the configured default. A rule applies to
invoices issued after it is set: issued invoices never change. Rates stay the API's decimal
strings ("21.00").
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.commands._shared import API, seg
from cli.commands.billing import app as billing_app
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(
    help="VAT rules: the VAT rate or exemption of a plan, a cost pool or a service.",
    no_args_is_help=True,
)
billing_app.add_typer(app, name="vat")

Subject = Annotated[
    str,
    typer.Argument(
        help="plan:<service>/<plan>, pool:<name> or service:<service>, e.g. plan:keycloak/small."
    ),
]
COLUMNS = [
    ("subject", "SUBJECT"),
    ("rate", "VAT %"),
    ("category", "CAT."),
    ("exemption_code", "EXEMPTION"),
    ("exemption_reason", "REASON"),
    ("created_by", "BY"),
    ("created_at", "SET AT"),
]


@app.command("list")
def list_rules(output: OutputOpt = Format.TABLE) -> None:
    """The VAT rules; lines without a rule get the configured default.

    Example: cityctl billing vat list
    """
    with state.client() as client:
        items = client.list_all(f"{API}/billing/vat-rules")
    emit(items, output, COLUMNS, empty="No VAT rules: every line gets the default.")


@app.command("set")
def set_rule(
    subject: Subject,
    rate: Annotated[
        str | None, typer.Option("--rate", help='VAT percentage, 0-100, e.g. 21 or "6.00".')
    ] = None,
    exempt: Annotated[
        str | None,
        typer.Option("--exempt", help="An EN 16931 VATEX exemption code, e.g. VATEX-EU-132."),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why the exemption applies (printed on the invoice)."),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Set (or replace) the VAT rule of a subject (finance, operator).

    Invoices issued from now on use it; issued invoices never change.

    Example: cityctl billing vat set plan:keycloak/small --rate 21
    Example: cityctl billing vat set service:keycloak --exempt VATEX-EU-132 --reason "…"
    """
    if (rate is None) == (exempt is None):
        raise CliError(
            "Give either --rate or --exempt (with --reason).",
            exit_code=ExitCode.USAGE,
            hint="cityctl billing vat set plan:keycloak/small --rate 21",
        )
    body = (
        {"rate": rate}
        if rate is not None
        else {"exemption_code": exempt, "exemption_reason": reason}
    )
    with state.client() as client:
        rule = client.call("PUT", f"{API}/billing/vat-rules/{seg(subject)}", json=body).json()
    if output is not Format.TABLE:
        emit(rule, output)
        return
    what = f"{rule['rate']} %" if not rule.get("exemption_code") else rule["exemption_code"]
    stderr.print(f"VAT rule of {rule['subject']} set: {what}.", highlight=False)
    emit([rule], output, COLUMNS)


@app.command("remove")
def remove_rule(subject: Subject) -> None:
    """Remove the VAT rule of a subject (finance, operator); issued invoices never change.

    Example: cityctl billing vat remove plan:keycloak/small
    """
    with state.client() as client:
        response = client.call("DELETE", f"{API}/billing/vat-rules/{seg(subject)}")
    if response.status_code == 204:
        stderr.print(f"{subject} had no VAT rule: nothing to remove.", highlight=False)
        return
    stderr.print(
        f"VAT rule of {subject} removed: its lines get the next rule or the default.",
        highlight=False,
    )
