"""Fixtures of the billing API tests: the API suite's app, client and world, on both databases."""

from __future__ import annotations

from tests.api.conftest import app, client, world  # noqa: F401 (fixtures)
from tests.factories import (  # noqa: F401 (fixtures)
    database_url,
    engine,
    postgres_template,
    sqlite_template,
)
