"""Import the municipalities CSV (Statbel: nis_code,name_nl,province,population,population_year).

Master data is imported, not typed in ("don't ask what you already know"). Re-importing
the same file is idempotent: existing tenants (matched by NIS code) get their inhabitants
and reference year updated, and the optional invoice columns (enterprise number, address)
when filled in; nothing else is touched. Every error names the CSV line, and
a file with any error imports nothing.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem
from controlplane.identifiers import normalise_enterprise_number
from controlplane.tenants.errors import MunicipalityCsvInvalid
from controlplane.tenants.models import Tenant
from controlplane.tenants.services import slug_from_name, slug_problem

COLUMNS = ("nis_code", "name_nl", "province", "population", "population_year")
#: Optional master data for invoices, after the Statbel columns in any order; an empty cell
#: leaves the tenant's value as it is.
OPTIONAL_COLUMNS = ("enterprise_number", "street", "postal_code", "city", "country")
ATTRIBUTION = "Source: Statbel, CC BY 4.0"
#: NIS codes per lookup query (inserts are batched by SQLAlchemy's insertmanyvalues).
LOOKUP_BATCH = 5_000


@dataclass(frozen=True)
class Municipality:
    line: int
    nis_code: str
    name: str
    province: str
    population: int
    population_year: int
    #: The optional columns that were filled in (enterprise number normalised).
    master_data: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def parse_csv(text: str) -> list[Municipality]:
    """Parse and check the whole file; raise once with every problem, by line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise MunicipalityCsvInvalid(
            "The CSV is empty.", hint=f"The first line must be: {','.join(COLUMNS)}"
        ) from None
    except csv.Error as exc:
        raise MunicipalityCsvInvalid(f"line 1: {exc}") from exc
    names = tuple(h.strip() for h in header)
    extra = names[len(COLUMNS) :]
    if (
        names[: len(COLUMNS)] != COLUMNS
        or not set(extra) <= set(OPTIONAL_COLUMNS)
        or len(set(extra)) != len(extra)
    ):
        raise MunicipalityCsvInvalid(
            "The CSV header is not the municipality format.",
            errors=[
                ErrorItem(
                    "line 1",
                    f"expected {','.join(COLUMNS)} and optionally "
                    f"{', '.join(OPTIONAL_COLUMNS)}, got {','.join(header)}",
                )
            ],
        )
    rows: list[Municipality] = []
    errors: list[ErrorItem] = []
    seen: dict[str, int] = {}
    seen_slugs: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            problem = _parse_row(line, row, extra)
            if isinstance(problem, ErrorItem):
                errors.append(problem)
                continue
            if problem.nis_code in seen:
                errors.append(
                    ErrorItem(
                        f"line {line}",
                        f"NIS code {problem.nis_code} also on line {seen[problem.nis_code]}",
                    )
                )
                continue
            slug = slug_from_name(problem.name)
            if slug in seen_slugs:
                errors.append(
                    ErrorItem(
                        f"line {line}",
                        f"name {problem.name!r} gives the same slug {slug!r} as line "
                        f"{seen_slugs[slug]}",
                    )
                )
                continue
            seen[problem.nis_code] = line
            seen_slugs[slug] = line
            rows.append(problem)
    except csv.Error as exc:
        errors.append(ErrorItem(f"line {reader.line_num}", str(exc)))
    if errors:
        raise MunicipalityCsvInvalid(
            f"The CSV has {len(errors)} error(s); nothing was imported.", errors=errors
        )
    return rows


def _parse_row(line: int, row: list[str], extra: tuple[str, ...] = ()) -> Municipality | ErrorItem:
    where = f"line {line}"
    if len(row) != len(COLUMNS) + len(extra):
        return ErrorItem(where, f"expected {len(COLUMNS) + len(extra)} fields, found {len(row)}")
    nis_code, name, province, population, year = (cell.strip() for cell in row[: len(COLUMNS)])
    master_data = {
        key: cell.strip()
        for key, cell in zip(extra, row[len(COLUMNS) :], strict=True)
        if cell.strip()
    }
    if "enterprise_number" in master_data:
        try:
            master_data["enterprise_number"] = normalise_enterprise_number(
                master_data["enterprise_number"]
            )
        except ValueError as exc:
            return ErrorItem(where, str(exc))
    if "country" in master_data:
        if not re.fullmatch(r"[A-Za-z]{2}", master_data["country"]):
            return ErrorItem(where, f"country {master_data['country']!r} is not a two-letter code")
        master_data["country"] = master_data["country"].upper()
    limits = {"street": 200, "postal_code": 10, "city": 100}
    for key, limit in limits.items():
        if len(master_data.get(key, "")) > limit:
            return ErrorItem(where, f"{key} is longer than {limit} characters")
    if not (len(nis_code) == 5 and nis_code.isascii() and nis_code.isdigit()):
        return ErrorItem(where, f"nis_code {nis_code!r} is not five digits")
    if not name or "\x00" in name or len(name) > 200:
        return ErrorItem(where, "name_nl is empty or not a name")
    slug = slug_from_name(name)
    problem = slug_problem(slug)
    if problem is not None:
        return ErrorItem(where, f"cannot derive a usable slug from {name!r} ({slug!r}: {problem})")
    if not (population.isascii() and population.isdigit()) or len(population) > 9:
        return ErrorItem(where, f"population {population!r} is not a whole number")
    if not (year.isascii() and year.isdigit()) or not 1800 <= int(year) <= 2200:
        return ErrorItem(where, f"population_year {year!r} is not a year")
    return Municipality(line, nis_code, name, province, int(population), int(year), master_data)


def import_municipalities(session: Session, text: str) -> ImportSummary:
    """Create missing tenants, update inhabitants of existing ones (by NIS code)."""
    rows = parse_csv(text)
    existing: dict[str, Tenant] = {}
    # One bind parameter per NIS code: PostgreSQL refuses a statement with more than
    # 65,535 of them (and SQLite 32,766), so a whole-country file is looked up in batches.
    for start in range(0, len(rows), LOOKUP_BATCH):
        codes = [r.nis_code for r in rows[start : start + LOOKUP_BATCH]]
        existing.update(
            (t.nis_code, t)
            for t in session.exec(select(Tenant).where(col(Tenant.nis_code).in_(codes))).all()
        )
    taken_slugs = set(session.exec(select(Tenant.slug)).all())
    summary = ImportSummary()
    errors: list[ErrorItem] = []
    now = utcnow()
    for row in rows:
        tenant = existing.get(row.nis_code)
        if tenant is None:
            slug = slug_from_name(row.name)
            if slug in taken_slugs:
                errors.append(
                    ErrorItem(
                        f"line {row.line}",
                        f"slug {slug!r} is already used by another tenant with another NIS code",
                    )
                )
                continue
            created = Tenant(
                slug=slug,
                name=row.name,
                nis_code=row.nis_code,
                inhabitants=row.population,
                inhabitants_year=row.population_year,
            )
            for key, value in row.master_data.items():
                setattr(created, key, value)
            session.add(created)
            taken_slugs.add(slug)
            summary.created.append(slug)
        elif (tenant.inhabitants, tenant.inhabitants_year) != (
            row.population,
            row.population_year,
        ) or any(getattr(tenant, k) != v for k, v in row.master_data.items()):
            tenant.inhabitants = row.population
            tenant.inhabitants_year = row.population_year
            for key, value in row.master_data.items():
                setattr(tenant, key, value)
            tenant.version += 1
            tenant.updated_at = now
            session.add(tenant)
            summary.updated.append(tenant.slug)
        else:
            summary.unchanged.append(tenant.slug)
    if errors:
        raise MunicipalityCsvInvalid(
            f"{len(errors)} row(s) clash with existing tenants; nothing was imported.",
            errors=errors,
        )
    session.flush()
    return summary
