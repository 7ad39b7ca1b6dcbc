"""Render processes: a batch's renders go out with the release until every child holds it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.provisioning.render_pool import RenderPool, RenderTask
from controlplane.rendering import InstanceRef, Renderer
from controlplane.settings import DEFAULT_KUBERNETES_VERSION
from tests.rendering.conftest import FIXTURES, SERVER_SECRET, TENANT


@pytest.fixture(scope="module")
def release() -> ServiceRelease:
    return load_catalog(FIXTURES / "catalog", FIXTURES / "templates").release("webapp", "1.0.0")


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    renders = RenderPool(2, server_secret=SERVER_SECRET)
    renders.warm()
    try:
        yield renders
    finally:
        renders.close()


def _task(release: ServiceRelease, index: int) -> RenderTask:
    return RenderTask(
        release_key=(release.name, release.version.version, release.digest),
        kubernetes_version=DEFAULT_KUBERNETES_VERSION,
        plan="small",
        tenant=TENANT,
        instance=InstanceRef(name=f"app{index}", id=f"6f1c2a9e-1d1b-4c55-9d0e-{index:012d}"),
        parameters={},
        storage_floor=None,
        tls=None,
    )


def test_a_batch_for_a_new_release_is_rendered_once_each(
    pool: RenderPool, release: ServiceRelease
) -> None:
    """Submitted all at once (as a batch is), no child has to ask for the release."""
    document = release.model_dump(mode="json")
    pending = [pool.submit(_task(release, i), document) for i in range(8)]
    rendered = [p.result() for p in pending]
    assert pool.resent == 0
    assert pool.rendered == 8
    # The children's renders are the worker's own.
    renderer = Renderer(server_secret=SERVER_SECRET)
    for index, done in enumerate(rendered):
        assert done is not None
        task = _task(release, index)
        own = renderer.render(
            release, plan="small", tenant=TENANT, instance=task.instance, parameters={}
        )
        assert done.digest == own.digest


def test_a_child_that_lacks_the_release_asks_for_it(
    pool: RenderPool, release: ServiceRelease
) -> None:
    """If the pool believes the children hold a release they do not, each child that gets a
    task without it answers so, and the render is sent again with it: never lost."""
    key = (release.name, release.version.version, release.digest)
    pool._holders[key] = {-1, -2}  # two children that do not exist
    document = release.model_dump(mode="json")
    rendered = [p.result() for p in [pool.submit(_task(release, i), document) for i in range(4)]]
    assert all(done is not None for done in rendered)
    assert pool.rendered == 4
    assert 1 <= pool.resent <= 4
