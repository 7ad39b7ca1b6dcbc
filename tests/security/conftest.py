"""The security suite reuses the API suite's fixtures (SQLite and PostgreSQL, two tenants)."""

from tests.api.conftest import World, app, client, world  # noqa: F401 (fixtures)
from tests.factories import (  # noqa: F401 (fixtures)
    database_url,
    engine,
    postgres_template,
    sqlite_template,
)
