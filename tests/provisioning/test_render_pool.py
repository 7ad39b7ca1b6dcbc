"""Render processes: a batch's renders go out with the release until every child holds it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.kube.objects import ObjectRef
from controlplane.provisioning.render_pool import RenderPool, RenderTask
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.gitops import GitOpsTarget, read_header
from controlplane.provisioning.targets.sealing import Sealer, ensure_keypair
from controlplane.rendering import InstanceRef, Renderer
from controlplane.rendering import packed as packed_module
from controlplane.rendering.packed import PackedObjects
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


def test_a_render_for_files_writes_the_folder_an_in_process_render_writes(
    pool: RenderPool, release: ServiceRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a target that writes YAML, a child sends the objects packed and their YAML; the
    GitOps target writes from that the same files as from the objects themselves (the
    sealed Secrets differ only by their random session keys), and unpacks none of them."""
    sealer = Sealer.from_pem_file(ensure_keypair(tmp_path / "sealing", key_size=2048))
    task = replace(_task(release, 1), yaml=True)
    done = pool.submit(task, release.model_dump(mode="json")).result()
    assert done is not None
    assert isinstance(done.objects, PackedObjects)
    assert all(ObjectRef.parse(oid).kind != "Secret" for oid in done.yaml)
    own = Renderer(server_secret=SERVER_SECRET).render(
        release, plan="small", tenant=TENANT, instance=task.instance, parameters={}
    )
    stacks = {
        "child": Stack(
            "gent",
            "app1",
            task.instance.id,
            done.namespace,
            done.objects,
            done.digests,
            done.digest,
            done.yaml,
        ),
        "here": Stack(
            "gent",
            "app1",
            task.instance.id,
            own.namespace,
            own.objects,
            own.object_digests(),
            own.digest,
        ),
    }
    trees: dict[str, dict[str, bytes]] = {}
    for where, stack in stacks.items():
        target = GitOpsTarget(tmp_path / where, sealer=sealer)
        with monkeypatch.context() as patch:
            patch.setattr(packed_module.pickle, "loads", _refuse_to_unpack)
            assert target.apply(stack).written
        folder = tmp_path / where / "gent" / "app1"
        trees[where] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert trees["child"].keys() == trees["here"].keys()
    sealed = {name for name in trees["here"] if "-secret-" in name}
    assert sealed, "the fixture has a Secret"
    for name, data in trees["here"].items():
        if name in sealed:
            assert read_header(trees["child"][name]) == read_header(data) is not None
            assert b"kind: SealedSecret" in trees["child"][name]
        else:
            assert trees["child"][name] == data


def _refuse_to_unpack(data: bytes) -> object:
    raise AssertionError("packed objects were unpacked")
