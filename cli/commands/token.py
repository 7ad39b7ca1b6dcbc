"""`cityctl token create | list | revoke`: API tokens for people and scripts (operators).

A new token is shown once. In table mode only the token itself goes to stdout (details
go to stderr), so ``export T=$(cityctl token create …)`` captures exactly the secret.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from cli.client import ApiClient
from cli.commands._shared import API, YesOpt, confirm, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)

COLUMNS = [
    ("id", "ID"),
    ("prefix", "PREFIX"),
    ("name", "NAME"),
    ("role", "ROLE"),
    ("tenant", "TENANT"),
    ("expires_at", "EXPIRES"),
    ("revoked_at", "REVOKED"),
    ("last_used_at", "LAST USED"),
]


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. gent-admin.")],
    role: Annotated[str, typer.Option(help="operator, tenant-admin, tenant-viewer or finance.")],
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Tenant slug (tenant roles only).")
    ] = None,
    expires_in_days: Annotated[
        int, typer.Option("--expires-in-days", min=1, max=3650, help="Lifetime in days.")
    ] = 90,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Create an API token; the token is printed once (on stdout), keep it safe.

    Example: cityctl token create --name gent-admin --role tenant-admin --tenant gent
    """
    if role.startswith("tenant-") and tenant is None:
        raise CliError(
            f"A {role} token needs --tenant.",
            exit_code=ExitCode.USAGE,
            hint="Write e.g. --role tenant-admin --tenant gent.",
        )
    body: dict[str, Any] = {"name": name, "role": role, "expires_in_days": expires_in_days}
    if tenant is not None:
        body["tenant"] = tenant
    with state.client() as client:
        # Never retried: a lost answer must not mint a second token behind the user's back.
        created = client.call("POST", f"{API}/tokens", json=body).json()
    if output is not Format.TABLE:
        emit(created, output)
        return
    scope = f" for tenant {created['tenant']}" if created.get("tenant") else ""
    stderr.print(
        f"Token {created['name']} ({created['role']}{scope}, prefix {created['prefix']}, "
        f"expires {created.get('expires_at') or 'never'}) created; it is shown only now.",
        highlight=False,
    )
    typer.echo(created["token"])


@app.command("list")
def list_(output: OutputOpt = Format.TABLE) -> None:
    """List API tokens (never their secrets).

    Example: cityctl token list -o json
    """
    with state.client() as client:
        emit(client.list_all(f"{API}/tokens"), output, COLUMNS)


def _find(client: ApiClient, ref: str) -> dict[str, Any]:
    """A token by id, prefix or (unique) name."""
    matches = [
        t
        for t in client.list_all(f"{API}/tokens")
        if ref in (str(t["id"]), t["prefix"], t["name"]) and t.get("revoked_at") is None
    ]
    if not matches:
        raise CliError(
            f"There is no active token {ref!r}.",
            exit_code=ExitCode.NOT_FOUND,
            hint="See the tokens with `cityctl token list`; give an id, prefix or name.",
        )
    if len(matches) > 1:
        raise CliError(
            f"{len(matches)} active tokens are named {ref!r}.",
            exit_code=ExitCode.USAGE,
            hint="Give the id or prefix instead (see `cityctl token list`).",
        )
    return matches[0]


@app.command()
def revoke(
    ref: Annotated[str, typer.Argument(help="Token id, prefix or name.")],
    yes: YesOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Revoke a token at once; whoever uses it is refused from now on.

    Example: cityctl token revoke gent-admin --yes
    """
    with state.client() as client:
        try:
            token_id = str(uuid.UUID(ref))
            label = ref
        except ValueError:
            found = _find(client, ref)
            token_id, label = str(found["id"]), f"{found['name']} ({found['prefix']})"
        confirm(f"revoke token {label}", yes=yes)
        revoked = client.call("DELETE", f"{API}/tokens/{seg(token_id)}").json()
    stderr.print(f"Token {revoked['name']} revoked.")
    emit(revoked, output, COLUMNS)
