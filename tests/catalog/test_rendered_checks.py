"""`catalog validate` checks what a catalogue file says about its stack against a render:
network components label pods, entry points are routed by an Ingress, the admin
credentials' Secret has the declared keys (issue 15 item 6, issue 14 metadata)."""

from __future__ import annotations

from typing import Any

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import AdminCredentials, EntryPoint
from controlplane.catalog.validation import check_catalog, check_rendered
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

CHECK = stack_check("1.33")


def errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def test_a_network_component_no_pod_carries_is_reported_per_version(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.edit(lambda d: d["network"]["ingress"][0].update(component="wbe"))
    found = errors(fixture_catalog)
    assert len(found) == 2, found
    assert found[0].startswith("catalog/demo.yaml: versions[0] 1.0.0: network.ingress[0].component")
    assert "'wbe' labels no workload's pods (the stack's components: " in found[0]
    assert "web" in found[0]


def test_an_entry_point_no_ingress_routes_is_reported(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d.update(entry_points=[{"name": "public", "title": "Site"}]))
    found = errors(fixture_catalog)
    assert len(found) == 2, found
    assert "entry_points[0]: no Ingress routes <host>/ (the Ingress hosts: none)" in found[0]


def test_admin_credentials_must_name_a_rendered_secret(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(
        lambda d: d.update(
            admin_credentials={
                "secret": "nowhere",
                "username_key": "USER",
                "password_key": "PASSWORD",
                "rotates": "admin_password",
            }
        )
    )
    found = errors(fixture_catalog)
    assert len(found) == 2, found
    assert "admin_credentials.secret: the stack has no Secret 'nowhere'" in found[0]


def _keycloak() -> tuple[Any, list[Any]]:
    release = load_catalog().release("keycloak", "26.0.7")
    return release, list(CHECK(release, release.plans[0], {}))


def test_the_shipped_keycloak_passes_and_each_broken_claim_is_named() -> None:
    release, objects = _keycloak()
    assert list(check_rendered(release, objects)) == []

    wrong_key = release.model_copy(
        update={
            "admin_credentials": AdminCredentials(
                secret="keycloak",
                username_key="KC_BOOTSTRAP_ADMIN_USERNAME",
                password_key="KEYCLOAK_ADMIN_PASSWORD",
                rotates="admin_password",
            )
        }
    )
    [(key, message)] = check_rendered(wrong_key, objects)
    assert key == "admin_credentials.password_key"
    assert "has no key 'KEYCLOAK_ADMIN_PASSWORD'" in message

    elsewhere = release.model_copy(
        update={"entry_points": [EntryPoint(name="api", title="API", host_prefix="api.")]}
    )
    [(key, message)] = check_rendered(elsewhere, objects)
    assert key == "entry_points[0]"
    assert "no Ingress routes api.<host>/" in message


def test_prefix_paths_match_whole_segments_and_exact_paths_only_themselves() -> None:
    release, _ = _keycloak()
    ingress = {
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "login.example.be",
                    "http": {
                        "paths": [
                            {"path": "/admin", "pathType": "Prefix"},
                            {"path": "/health", "pathType": "Exact"},
                        ]
                    },
                }
            ]
        },
    }

    def problems(path: str) -> int:
        bare = release.model_copy(
            update={
                "entry_points": [EntryPoint(name="e", title="E", path=path)],
                "admin_credentials": None,
                "network": release.network.model_copy(update={"ingress": [], "egress": []}),
            }
        )
        return len(list(check_rendered(bare, [ingress])))

    assert problems("/admin") == 0
    assert problems("/admin/users") == 0
    assert problems("/administrator") == 1
    assert problems("/health") == 0
    assert problems("/health/live") == 1
