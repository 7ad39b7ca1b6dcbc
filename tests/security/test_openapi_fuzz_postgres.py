"""schemathesis over the OpenAPI document on PostgreSQL (the API suite's fuzz runs on SQLite).

PostgreSQL refuses inputs SQLite stores silently (NUL characters in text and JSONB, strings
longer than a ``VARCHAR(n)``, integers beyond BIGINT), so only a run on PostgreSQL shows a
5xx that such input would cause in production.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlmodel import Session

from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.provisioning.placement import ensure_default_target
from controlplane.settings import Settings
from tests.factories import (  # noqa: F401 (fixtures)
    PostgresTemplate,
    SqliteTemplate,
    make_instance,
    make_tenant,
    make_token,
    postgres_template,
    publish_demo,
)

_TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def pg_app(
    postgres_template: PostgresTemplate,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    folder = tmp_path_factory.mktemp("cp-fuzz-pg")
    with postgres_template.clone() as url:
        engine = make_engine(url)
        with Session(engine) as s:
            ensure_default_target(s, folder)
            tenant = make_tenant(s, "gent", name="Gent", nis_code="44021")
            _TOKEN["operator"] = make_token(s, Role.OPERATOR)
            publish_demo(s, "1.0.0")
            make_instance(s, tenant, "web")
            s.commit()
        try:
            yield create_app(
                Settings(data_dir=folder, server_secret="fuzz-secret", embedded_worker=False),  # type: ignore[arg-type]
                engine=engine,
            )
        finally:
            engine.dispose()


class _Switch:
    """An ASGI app that forwards to the app of the current PostgreSQL database.

    The OpenAPI document does not depend on the database, so the schema is read from an
    app on a throwaway SQLite file at import (no PostgreSQL database is created just by
    collecting the suite); the fixture then points the switch at the PostgreSQL app.
    """

    def __init__(self, target: FastAPI) -> None:
        self.target = target

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


_DOC_FOLDER = Path(tempfile.mkdtemp(prefix="cp-fuzz-doc-"))
_SWITCH = _Switch(
    create_app(
        Settings(data_dir=_DOC_FOLDER, embedded_worker=False),
        engine=make_engine(SqliteTemplate(_DOC_FOLDER).clone(_DOC_FOLDER)),
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _SWITCH)


@pytest.fixture
def on_postgres(pg_app: FastAPI) -> None:
    _SWITCH.target = pg_app


@pytest.mark.slow
@pytest.mark.postgres
@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_on_postgres(case: Any, on_postgres: None) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_TOKEN['operator']}"},
        checks=[not_a_server_error],
    )
