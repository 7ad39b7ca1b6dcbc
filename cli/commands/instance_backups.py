"""`cityctl instance backups NAME`: the backups of an instance's database.

The API reads them from the instance's cluster when asked: the ``Backup`` objects the
database operator (CloudNativePG) made and the phases and times it reported. A target that
does not run its databases through the operator keeps no backups, and the API says so.
"""

from __future__ import annotations

from cli.commands._shared import TenantOpt, instances_path, resolve_tenant
from cli.commands.instance import Name, app
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

COLUMNS = [
    ("name", "NAME"),
    ("phase", "PHASE"),
    ("started_at", "STARTED"),
    ("stopped_at", "FINISHED"),
    ("method", "METHOD"),
    ("schedule", "SCHEDULE"),
    ("error", "ERROR"),
]


@app.command()
def backups(name: Name, tenant: TenantOpt = None, output: OutputOpt = Format.TABLE) -> None:
    """List the backups of an instance's database, newest first, as its operator reports them.

    Also prints the schedules and the earliest point in time the database can be restored to.

    Example: cityctl instance backups forms
    """
    with state.client() as client:
        path = instances_path(resolve_tenant(client, tenant), name)
        found = client.get_json(f"{path}/backups")
    if output is not Format.TABLE:
        emit(found, output)
        return
    schedules = ", ".join(found.get("schedules") or []) or "none"
    stderr.print(f"Backup schedules of {name}: {schedules}", highlight=False, markup=False)
    if found.get("recoverable_from"):
        stderr.print(
            "The operator reports the database recoverable to any point in time from "
            f"{found['recoverable_from']}.",
            highlight=False,
            markup=False,
        )
    emit(found["backups"], output, COLUMNS, empty=f"No backups of {name} yet.")
