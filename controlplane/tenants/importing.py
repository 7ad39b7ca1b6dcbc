"""Import the municipalities CSV (Statbel: nis_code,name_nl,province,population,population_year).

Master data is imported, not typed in ("don't ask what you already know"). Re-importing
the same file is idempotent: existing tenants (matched by NIS code) get their inhabitants
and reference year updated, nothing else is touched. Every error names the CSV line, and
a file with any error imports nothing.

This module must not know about HTTP or roles.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from controlplane.db.types import utcnow
from controlplane.errors import ErrorItem
from controlplane.tenants.errors import MunicipalityCsvInvalid
from controlplane.tenants.models import Tenant
from controlplane.tenants.services import slug_from_name, slug_problem

COLUMNS = ("nis_code", "name_nl", "province", "population", "population_year")
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
    if tuple(h.strip() for h in header) != COLUMNS:
        raise MunicipalityCsvInvalid(
            "The CSV header is not the municipality format.",
            errors=[ErrorItem("line 1", f"expected {','.join(COLUMNS)}, got {','.join(header)}")],
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
            problem = _parse_row(line, row)
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


def _parse_row(line: int, row: list[str]) -> Municipality | ErrorItem:
    where = f"line {line}"
    if len(row) != len(COLUMNS):
        return ErrorItem(where, f"expected {len(COLUMNS)} fields, found {len(row)}")
    nis_code, name, province, population, year = (cell.strip() for cell in row)
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
    return Municipality(line, nis_code, name, province, int(population), int(year))


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
            session.add(
                Tenant(
                    slug=slug,
                    name=row.name,
                    nis_code=row.nis_code,
                    inhabitants=row.population,
                    inhabitants_year=row.population_year,
                )
            )
            taken_slugs.add(slug)
            summary.created.append(slug)
        elif (tenant.inhabitants, tenant.inhabitants_year) != (row.population, row.population_year):
            tenant.inhabitants = row.population
            tenant.inhabitants_year = row.population_year
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
