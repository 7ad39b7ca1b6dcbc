"""The municipality CSV: slugs, line-numbered errors, idempotent re-import (SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from controlplane.tenants.errors import MunicipalityCsvInvalid
from controlplane.tenants.importing import import_municipalities, parse_csv
from controlplane.tenants.services import is_slug, slug_from_name
from tests.factories import MUNICIPALITIES_CSV

HEADER = "nis_code,name_nl,province,population,population_year\n"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Sint-Niklaas", "sint-niklaas"),
        ("De Panne", "de-panne"),
        ("Nazareth-De Pinte", "nazareth-de-pinte"),
        ("Hélécine", "helecine"),
        ("'s-Gravenwezel", "s-gravenwezel"),
    ],
)
def test_slug_from_name(name: str, slug: str) -> None:
    assert slug_from_name(name) == slug


def test_every_flemish_municipality_gets_a_unique_dns_label() -> None:
    rows = parse_csv(MUNICIPALITIES_CSV.read_text(encoding="utf-8"))
    slugs = [slug_from_name(r.name) for r in rows]
    assert len(rows) == 285
    assert len(set(slugs)) == 285
    assert all(is_slug(s) for s in slugs)


def test_errors_name_every_bad_line() -> None:
    text = HEADER + "11001,A,Antwerpen,1,2020\n11001,B,Antwerpen,1,2020\n2,C,x,1,2020\n"
    with pytest.raises(MunicipalityCsvInvalid) as caught:
        parse_csv(text)
    assert [e.location for e in caught.value.errors] == ["line 3", "line 4"]
    assert "also on line 2" in caught.value.errors[0].message


def test_reimport_updates_only_inhabitants(engine: Engine) -> None:
    with Session(engine) as s:
        first = import_municipalities(s, HEADER + "11001,Aartselaar,Antwerpen,14427,2020\n")
        s.commit()
        assert first.created == ["aartselaar"]
        again = import_municipalities(s, HEADER + "11001,Aartselaar,Antwerpen,15000,2024\n")
        s.commit()
        assert (again.created, again.updated) == ([], ["aartselaar"])
