"""schemathesis over the OpenAPI document (bounded, in-process ASGI, with an operator token).

Finds any input that gives a server error, and any answer that breaks the document
(status code, content type, body schema). Runs on SQLite to stay quick; the rest of the
API suite covers PostgreSQL.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session

from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.provisioning.placement import ensure_default_target
from controlplane.settings import Settings
from tests.factories import SqliteTemplate, make_instance, make_tenant, make_token, publish_demo

_TOKEN: dict[str, str] = {}


def _fuzz_app() -> FastAPI:
    # Built at import: schemathesis parametrizes the tests from the app's document.
    folder = Path(tempfile.mkdtemp(prefix="cp-fuzz-"))
    url = SqliteTemplate(folder).clone(folder)
    engine = make_engine(url)
    with Session(engine) as s:
        ensure_default_target(s, folder)
        tenant = make_tenant(s, "gent", name="Gent", nis_code="44021")
        _TOKEN["operator"] = make_token(s, Role.OPERATOR)
        publish_demo(s, "1.0.0")
        make_instance(s, tenant, "web")
        s.commit()
    return create_app(Settings(data_dir=folder, embedded_worker=False), engine=engine)


schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app())


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_answers_match_the_document(case: Any) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_TOKEN['operator']}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
