"""A release's digest covers what it renders, not its metadata (issue 14).

Declaring ``forward_only_migrations`` on an already published version must not change
its digest, or every published version would look changed and be refused as immutable.
"""

from __future__ import annotations

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.versions import crossed_by_rollback


def test_digest_ignores_forward_only_migrations() -> None:
    shipped = load_catalog().release("keycloak", "26.0.7")
    assert shipped.version.forward_only_migrations is True
    flipped = shipped.model_copy(
        update={"version": shipped.version.model_copy(update={"forward_only_migrations": False})}
    )
    assert flipped.digest == shipped.digest
    assert flipped.metadata() != shipped.metadata()
    assert flipped.metadata()["forward_only_migrations"] is False


def test_digest_changes_with_what_renders() -> None:
    shipped = load_catalog().release("keycloak", "26.0.7")
    other = shipped.model_copy(
        update={"version": shipped.version.model_copy(update={"app_version": "26.0.8"})}
    )
    assert other.digest != shipped.digest


def test_a_rollback_crosses_the_versions_it_undoes() -> None:
    published = ["1.14.2", "1.15.0", "1.17.0", "1.18.0-rc.1", "1.18.0"]
    assert crossed_by_rollback("1.17.0", "1.14.2", published) == ["1.15.0", "1.17.0"]
    assert crossed_by_rollback("1.18.0", "1.17.0", published) == ["1.18.0-rc.1", "1.18.0"]
    assert crossed_by_rollback("1.14.2", "1.17.0", published) == []
    assert crossed_by_rollback("1.17.0", "1.17.0", published) == []
