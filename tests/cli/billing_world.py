"""The set-up the billing CLI tests share: an opened platform, towns, tokens and usage.

Each test module still builds its own world in a module-scoped fixture (the `platform` of
conftest.py is per module); these helpers are the steps those fixtures have in common.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select, update

from controlplane.auth.models import Role
from controlplane.provisioning.models import UsageEvent, UsageKind
from controlplane.tenants.models import Tenant
from tests.cli.conftest import Platform
from tests.factories import make_instance


def last_month() -> str:
    """Last month in Brussels, as YYYY-MM."""
    first = datetime.now(ZoneInfo("Europe/Brussels")).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def open_platform(platform: Platform, towns: Path) -> str:
    """Bootstrap an operator, publish the catalog and import ``towns``; the operator token."""
    operator = platform.issue_token(Role.OPERATOR, "bootstrap-operator")
    platform.ok("catalog", "publish", token=operator)
    platform.ok("tenant", "import", str(towns), token=operator)
    return operator


def invoice_towns(directory: Path) -> Path:
    """Gent with its invoice master data (enterprise number, address), Aalst without."""
    towns = directory / "municipalities.csv"
    towns.write_text(
        "nis_code,name_nl,province,population,population_year,enterprise_number,street,"
        "postal_code,city\n"
        "44021,Gent,Oost-Vlaanderen,265086,2024,0207.451.227,Botermarkt 1,9000,Gent\n"
        "41002,Aalst,Oost-Vlaanderen,88000,2024,,,,\n",
        encoding="utf-8",
    )
    return towns


def new_token(
    platform: Platform, operator: str, name: str, role: str, tenant: str | None = None
) -> str:
    """A token made with `cityctl token create` (``role`` as the CLI spells it)."""
    args = ["token", "create", "--name", name, "--role", role]
    if tenant is not None:
        args += ["--tenant", tenant]
    token: str = platform.json(*args, token=operator)["token"]
    return token


def started_keycloak(platform: Platform, slug: str, at: datetime) -> str:
    """A Keycloak `loket` (plan small) of ``slug`` in the database, started at ``at``; its id."""
    with Session(platform.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
        instance = make_instance(session, tenant, "loket", service="keycloak", plan="small")
        session.add(
            UsageEvent(
                instance_id=instance.id,
                tenant_id=tenant.id,
                service=instance.service,
                plan="small",
                kind=UsageKind.STARTED,
                at=at,
            )
        )
        session.commit()
        return str(instance.id)


def run_keycloak_since_40_days(platform: Platform, admin: str) -> None:
    """`cityctl instance create` a Keycloak for the admin's tenant, then date its usage back
    40 days, so it ran all of last month (a draft month: not closed)."""
    platform.ok(
        "instance", "create", "loket", "--service", "keycloak", "--version", "25.0.6",
        "--plan", "small", "--set", "admin_username=gentadmin", "--wait", "--timeout", "60",
        token=admin,
    )  # fmt: skip
    with Session(platform.engine) as session:
        assert session.exec(select(UsageEvent)).all()
        session.exec(update(UsageEvent).values(at=datetime.now(UTC) - timedelta(days=40)))
        session.commit()
