"""`cityctl tenant list | show | create | update | import FILE | domain add|remove|list`.

Operators onboard and manage municipalities; a tenant token sees only its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.commands._shared import API, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr, stdout
from cli.state import state

app = typer.Typer(help="Municipalities (tenants) and their master data.", no_args_is_help=True)

COLUMNS = [
    ("slug", "SLUG"),
    ("name", "NAME"),
    ("nis_code", "NIS"),
    ("inhabitants", "INHABITANTS"),
    ("status", "STATUS"),
    ("group", "GROUP"),
    ("max_instances", "MAX INSTANCES"),
]
Slug = Annotated[str, typer.Argument(help="Tenant slug, e.g. gent.")]


# Options that tenant create and update share (master data for statements and invoices).
InhabitantsOpt = Annotated[int | None, typer.Option(help="Number of inhabitants.")]
InhabitantsYearOpt = Annotated[
    int | None, typer.Option("--inhabitants-year", help="Reference year of inhabitants.")
]
EnterpriseNumberOpt = Annotated[
    str | None,
    typer.Option("--enterprise-number", help="KBO number for invoices, e.g. 0207.451.227."),
]
StreetOpt = Annotated[
    str | None, typer.Option(help="Postal address for invoices: street and number.")
]
PostalCodeOpt = Annotated[str | None, typer.Option("--postal-code", help="Postal code, e.g. 9000.")]
CityOpt = Annotated[str | None, typer.Option(help="City of the postal address.")]
CountryOpt = Annotated[str | None, typer.Option(help="Country code of the address (default BE).")]


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="Only tenants with this status: active, suspended, …")
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """List tenants (a tenant token sees only its own).

    Example: cityctl tenant list --status active -o json
    """
    with state.client() as client:
        items = client.list_all(f"{API}/tenants", status=status)
    emit(items, output, COLUMNS, empty="No tenants.")


@app.command()
def show(slug: Slug, output: OutputOpt = Format.YAML) -> None:
    """Show one tenant's master data, limits, contacts and granted domains.

    Example: cityctl tenant show gent -o json
    """
    with state.client() as client:
        tenant = client.get_json(f"{API}/tenants/{seg(slug)}")
        granted = client.get_json(f"{API}/tenants/{seg(slug)}/domains")
    tenant["domains"] = [d["domain"] for d in granted]
    emit(tenant, output, [*COLUMNS, ("domains", "DOMAINS")])


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Display name, e.g. 'Gent'.")],
    nis_code: Annotated[str, typer.Option("--nis-code", help="Five-digit NIS code.")],
    slug: Annotated[
        str | None,
        typer.Option(
            help="Slug: 1 to 40 lower-case letters, digits and single hyphens, starting and "
            "ending with a letter or digit; default derived from the name."
        ),
    ] = None,
    inhabitants: InhabitantsOpt = None,
    inhabitants_year: InhabitantsYearOpt = None,
    enterprise_number: EnterpriseNumberOpt = None,
    street: StreetOpt = None,
    postal_code: PostalCodeOpt = None,
    city: CityOpt = None,
    country: CountryOpt = None,
    group: Annotated[
        str | None, typer.Option(help="Billing group, e.g. an intercommunale.")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max-instances", help="Most live instances allowed.")
    ] = None,
    default_target: Annotated[
        str | None, typer.Option("--default-target", help="Target for its instances.")
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Onboard one municipality by hand (prefer `tenant import` with the Statbel CSV).

    Example: cityctl tenant create --name Gent --nis-code 44021 --inhabitants 265086
    """
    body: dict[str, Any] = {"name": name, "nis_code": nis_code}
    optional = {
        "slug": slug,
        "inhabitants": inhabitants,
        "inhabitants_year": inhabitants_year,
        "enterprise_number": enterprise_number,
        "street": street,
        "postal_code": postal_code,
        "city": city,
        "country": country,
        "group": group,
        "max_instances": max_instances,
        "default_target": default_target,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    with state.client() as client:
        tenant = client.call("POST", f"{API}/tenants", json=body, create=True).json()
    stderr.print(f"Tenant {tenant['slug']} created.")
    emit(tenant, output, COLUMNS)


@app.command()
def update(
    slug: Slug,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    status: Annotated[str | None, typer.Option(help="active, suspended or offboarded.")] = None,
    inhabitants: InhabitantsOpt = None,
    inhabitants_year: InhabitantsYearOpt = None,
    enterprise_number: EnterpriseNumberOpt = None,
    street: StreetOpt = None,
    postal_code: PostalCodeOpt = None,
    city: CityOpt = None,
    country: CountryOpt = None,
    group: Annotated[str | None, typer.Option(help="Billing group.")] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max-instances", help="Most live instances allowed.")
    ] = None,
    max_cpu: Annotated[str | None, typer.Option("--max-cpu", help="CPU limit, e.g. 64.")] = None,
    max_memory: Annotated[
        str | None, typer.Option("--max-memory", help="Memory limit, e.g. 256Gi.")
    ] = None,
    default_target: Annotated[
        str | None, typer.Option("--default-target", help="Target for its instances.")
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Change a tenant's master data, status or limits (only the options you give).

    Example: cityctl tenant update gent --max-instances 30 --status active
    """
    changes = {
        "name": name,
        "status": status,
        "inhabitants": inhabitants,
        "inhabitants_year": inhabitants_year,
        "enterprise_number": enterprise_number,
        "street": street,
        "postal_code": postal_code,
        "city": city,
        "country": country,
        "group": group,
        "max_instances": max_instances,
        "max_cpu": max_cpu,
        "max_memory": max_memory,
        "default_target": default_target,
    }
    body = {key: value for key, value in changes.items() if value is not None}
    if not body:
        raise CliError(
            "Nothing to change.",
            exit_code=ExitCode.USAGE,
            hint="Give at least one option, e.g. --max-instances 30 (see --help).",
        )
    path = f"{API}/tenants/{seg(slug)}"
    with state.client() as client:
        # If-Match on the version we just read: a concurrent change is a conflict (exit 5),
        # never silently overwritten.
        current = client.call("GET", path)
        headers = {"If-Match": current.headers["ETag"]} if "ETag" in current.headers else {}
        tenant = client.call("PATCH", path, json=body, headers=headers).json()
    stderr.print(f"Tenant {tenant['slug']} updated.")
    emit(tenant, output, COLUMNS)


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="Statbel CSV: nis_code,name_nl,province,population,population_year.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output: OutputOpt = Format.TABLE,
) -> None:
    """Onboard municipalities from the Statbel CSV (idempotent; re-import updates inhabitants).

    Example: cityctl tenant import flemish-municipalities.csv
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(
            f"Cannot read {file} as UTF-8 text: {exc}.",
            exit_code=ExitCode.USAGE,
            hint="Give the municipality CSV as exported by Statbel (UTF-8).",
        ) from exc
    with state.client() as client:
        summary = client.call(
            "POST",
            f"{API}/tenants/import",
            content=text.encode("utf-8"),
            headers={"Content-Type": "text/csv; charset=utf-8"},
        ).json()
    if output is not Format.TABLE:
        emit(summary, output)
        return
    # All of Flanders is 285 rows: the table is the counts; -o json lists the slugs.
    stdout.print(
        f"Imported {file.name}: {len(summary['created'])} created, "
        f"{len(summary['updated'])} updated, {len(summary['unchanged'])} unchanged. "
        f"({summary.get('attribution', 'Source: Statbel, CC BY 4.0')})",
        highlight=False,
    )


domain_app = typer.Typer(
    help="DNS domains granted to a tenant: its instances may use them (and subdomains) "
    "as host names.",
    no_args_is_help=True,
)
app.add_typer(domain_app, name="domain")
Domain = Annotated[str, typer.Argument(help="DNS domain, e.g. gent.be (covers its subdomains).")]
DOMAIN_COLUMNS = [("domain", "DOMAIN"), ("granted_by", "GRANTED BY"), ("created_at", "GRANTED")]


@domain_app.command("list")
def domain_list(slug: Slug, output: OutputOpt = Format.TABLE) -> None:
    """List the domains granted to a tenant.

    Example: cityctl tenant domain list gent
    """
    with state.client() as client:
        emit(
            client.get_json(f"{API}/tenants/{seg(slug)}/domains"),
            output,
            DOMAIN_COLUMNS,
            empty=f"No domains granted to {slug}.",
        )


@domain_app.command("add")
def domain_add(slug: Slug, domain: Domain, output: OutputOpt = Format.TABLE) -> None:
    """Grant a domain to a tenant (operators; a domain belongs to one tenant only).

    Example: cityctl tenant domain add gent gent.be
    """
    with state.client() as client:
        granted = client.call(
            "POST", f"{API}/tenants/{seg(slug)}/domains", json={"domain": domain}
        ).json()
    stderr.print(f"Domain {granted['domain']} granted to {slug}.")
    emit(granted, output, DOMAIN_COLUMNS)


@domain_app.command("remove")
def domain_remove(slug: Slug, domain: Domain) -> None:
    """Take a domain back (refused while the tenant's instances still use it).

    Example: cityctl tenant domain remove gent gent.be
    """
    with state.client() as client:
        client.call("DELETE", f"{API}/tenants/{seg(slug)}/domains/{seg(domain)}")
    stderr.print(f"Domain {domain} removed from {slug}.")
