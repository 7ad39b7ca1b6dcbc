"""The shipped catalogue: every service x version x plan renders and passes schema and policy.

The matrix is read from catalog/ at collection time, so a new service, version or plan is
tested the moment it is added (ids like ``keycloak-25.0.6-small``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.catalog.loading import Catalog, load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.catalog.validation import check_catalog, example_parameters, validate_catalog
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.catalog_checks import stack_check, update_check
from controlplane.rendering.naming import label_value

CATALOG: Catalog = load_catalog()
MATRIX = [
    (service.name, version.version, plan.name)
    for service in sorted(CATALOG.services.values(), key=lambda s: s.name)
    for version in service.versions
    for plan in service.plans
]
TENANT = TenantRef(slug="gent", name="Gent", nis_code="44021")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(server_secret=b"shipped-catalogue-test", kubernetes_version="1.33")


_releases: dict[tuple[str, str], ServiceRelease] = {}


def release(service: str, version: str) -> ServiceRelease:
    key = (service, version)
    if key not in _releases:
        _releases[key] = CATALOG.release(service, version)
    return _releases[key]


def test_the_shipped_catalogue_is_statically_clean() -> None:
    # The static rules include the YAML 1.1/1.2 traps of every catalogue file and template.
    assert CATALOG.services, "the shipped catalogue has no services"
    assert [str(e) for e in validate_catalog()] == []


def test_no_plan_change_or_upgrade_of_the_shipped_catalogue_is_refused() -> None:
    report = check_catalog(check_stack=stack_check("1.33"), check_update=update_check)
    assert [str(e) for e in report.errors] == []
    assert report.plan_changes == sum(
        len(s.versions) * len(s.plans) * (len(s.plans) - 1) // 2 for s in CATALOG.services.values()
    )
    assert report.upgrades > 0


@pytest.mark.parametrize(
    ("service", "version", "plan"), MATRIX, ids=["-".join(combo) for combo in MATRIX]
)
def test_renders_and_passes_schema_and_policy(
    renderer: Renderer, service: str, version: str, plan: str
) -> None:
    rel = release(service, version)
    # Raises ManifestInvalid / PolicyViolation / TemplateInvalid on any problem.
    stack = renderer.render(
        rel,
        plan=plan,
        tenant=TENANT,
        instance=InstanceRef(name="main", id="0d6f3c1e-4f7a-4b0e-9a51-6a3c5b1e2f10"),
        parameters=example_parameters(rel.parameters),
    )
    assert stack.namespace == "gent--main"
    kinds = {obj["kind"] for obj in stack.objects}
    assert {"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"} <= kinds
    assert kinds & {"Deployment", "StatefulSet"}, "a stack runs at least one workload"
    for obj in stack.objects:
        labels = obj["metadata"]["labels"]
        assert labels["city-platform.be/service"] == service
        assert labels["city-platform.be/plan"] == plan
        assert labels["app.kubernetes.io/version"] == label_value(rel.version.app_version)
    # A file mode is at most 0o777 (the apiserver refuses more with 422): ckan and nextcloud
    # once shipped `defaultMode: 0555`, which YAML 1.2 reads as decimal 555.
    assert [m for m in _file_modes(stack.objects) if not 0 <= m[1] <= 0o777] == []


def _file_modes(value: Any, path: str = "") -> Iterator[tuple[str, int]]:
    """Every ``defaultMode`` and ``mode`` (volumes and their items) with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("defaultMode", "mode") and isinstance(item, int):
                yield f"{path}.{key}", item
            else:
                yield from _file_modes(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _file_modes(item, f"{path}[{index}]")
