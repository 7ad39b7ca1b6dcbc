"""Database fixtures (shared with the other suites through tests.factories)."""

from tests.factories import (  # noqa: F401 (fixtures)
    database_url,
    engine,
    postgres_template,
    sqlite_template,
)
