"""Fixtures of the rendering tests: a small catalogue of our own and a renderer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog.loading import Catalog, load_catalog
from controlplane.catalog.models import ServiceRelease, TemplateBundle
from controlplane.rendering import InstanceRef, RenderedStack, Renderer, TenantRef

FIXTURES = Path(__file__).parent / "fixtures"
SERVER_SECRET = b"test-server-secret"
TENANT = TenantRef(slug="gent", name="Stad Gent", nis_code="44021")
INSTANCE = InstanceRef(name="portal", id="6f1c2a9e-1d1b-4c55-9d0e-0c1f6f3b2a10")


@pytest.fixture(scope="session")
def fixture_catalog() -> Catalog:
    return load_catalog(FIXTURES / "catalog", FIXTURES / "templates")


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    return Renderer(server_secret=SERVER_SECRET)


@pytest.fixture(scope="session")
def release(fixture_catalog: Catalog) -> ServiceRelease:
    return fixture_catalog.release("webapp", "1.0.0")


RenderFn = Callable[..., RenderedStack]


@pytest.fixture
def render(renderer: Renderer, release: ServiceRelease) -> RenderFn:
    def _render(
        rel: ServiceRelease | None = None,
        *,
        plan: str = "small",
        parameters: Mapping[str, Any] | None = None,
        instance: InstanceRef = INSTANCE,
        tenant: TenantRef = TENANT,
        storage_floor: str | None = None,
    ) -> RenderedStack:
        return renderer.render(
            rel or release,
            plan=plan,
            tenant=tenant,
            instance=instance,
            parameters=parameters or {},
            storage_floor=storage_floor,
        )

    return _render


def with_files(release: ServiceRelease, **changes: str | None) -> ServiceRelease:
    """The release with template files replaced (``None`` removes one).

    File names are not identifiers: pass them as ``**{"10-web.yaml.j2": text}``.
    """
    files = dict(release.bundle.files)
    for name, text in changes.items():
        if text is None:
            files.pop(name, None)
        else:
            files[name] = text
    return release.model_copy(update={"bundle": TemplateBundle(files=files)})


def edit(release: ServiceRelease, file: str, old: str, new: str) -> ServiceRelease:
    """The release with one replacement in one template file (which must apply)."""
    text = release.bundle.files[file]
    assert old in text, f"{old!r} not in {file}"
    return with_files(release, **{file: text.replace(old, new, 1)})
