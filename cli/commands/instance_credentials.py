"""`cityctl instance credentials NAME [--rotate]`: the initial administrator of an instance.

The API reads the credentials from the instance's cluster when asked (a tenant-admin of the
tenant, or an operator; the read is audited, the values never are). They are printed once,
to stdout, and nowhere else. ``--rotate`` asks the control plane for a new password (a new
generation, guarded by ``If-Match``), waits until the reconciler applied it and shows it.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Annotated

import typer

from cli.commands._shared import TenantOpt, YesOpt, confirm, instances_path, resolve_tenant
from cli.commands._waiting import TimeoutOpt, wait_for_instance
from cli.commands.instance import Name, app
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

RotateOpt = Annotated[
    bool,
    typer.Option(
        "--rotate",
        help="Replace the password first (asks; waits until the instance applied it).",
    ),
]


@app.command()
def credentials(
    name: Name,
    rotate: RotateOpt = False,
    yes: YesOpt = False,
    timeout: TimeoutOpt = 600.0,
    tenant: TenantOpt = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Show the initial administrator's user name and password (tenant-admins only).

    Read from the cluster now and printed once; the audit log records that you read them.
    On a GitOps target that cannot read its cluster it says which SealedSecret holds them.

    Example: cityctl instance credentials login --rotate
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        if rotate:
            confirm(f"replace the administrator password of instance {name}", yes=yes)
            current = client.call("GET", path)
            etag = current.headers.get("ETag")
            rotated = client.call(
                "POST", f"{path}/credentials/rotate", headers={"If-Match": etag} if etag else {}
            ).json()
            wait_for_instance(client, path, generation=int(rotated["generation"]), timeout=timeout)
            stderr.print(f"Rotated the administrator password of {name}.", highlight=False)
        given = client.get_json(f"{path}/credentials")
    if output is not Format.TABLE:
        emit(given, output)
        return
    lines = [
        f"Administrator of {name} (Secret {given['secret']} in namespace {given['namespace']}):",
        f"  username: {given['username']}",
        f"  password: {given['password']}",
    ]
    if given.get("note"):
        lines += ["", *textwrap.wrap(str(given["note"]), width=88)]
    sys.stdout.write("\n".join(lines) + "\n")
