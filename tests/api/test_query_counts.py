"""Instance list and show read a fixed number of statements, whatever the page holds.

Guards the hot reads against N+1 queries (e.g. the lifecycle view querying published
versions per instance) and against reloading release documents (whole template bundles)
on every request. Counts statements with SQLAlchemy's ``before_cursor_execute``; asserts
no timings (those are in ``tests/benchmarks/bench_api.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session, select

from controlplane.catalog.publishing import publish_release
from controlplane.provisioning.models import Instance
from controlplane.provisioning.placement import ensure_default_target
from controlplane.tenants.models import Tenant
from tests.api.conftest import World
from tests.factories import demo_release

BASE = "/api/v1/tenants/{tenant}/instances"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _fleet(engine: Engine, tmp_path: Any, counts: dict[str, int]) -> None:
    """``counts[tenant]`` instances per tenant, alternating two services and versions."""
    with Session(engine) as session:
        ensure_default_target(session, tmp_path)
        # A second service, so that the page spans several services.
        publish_release(session, demo_release("1.0.0", name="other"))
        for slug, n in counts.items():
            tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).one()
            for i in range(n):
                service = "demo" if i % 2 == 0 else "other"
                name = f"app{i:03d}"
                session.add(
                    Instance(
                        tenant_id=tenant.id,
                        name=name,
                        service=service,
                        version="1.0.0",
                        plan="small",
                        parameters={"hostname": f"{name}.{slug}.be"},
                        target="local",
                        namespace=f"{slug}-{name}",
                    )
                )
        session.commit()


def _count(client: TestClient, engine: Engine, world: World, path: str) -> list[str]:
    with statements(engine) as seen:
        r = client.get(path, headers=world.auth("operator"))
    assert r.status_code == 200, r.text
    return seen


def test_instance_list_statements_do_not_grow_with_the_page(
    client: TestClient, engine: Engine, world: World, tmp_path: Any
) -> None:
    _fleet(engine, tmp_path, {world.gent: 50, world.brugge: 1})
    one = BASE.format(tenant=world.brugge)
    many = BASE.format(tenant=world.gent)
    _count(client, engine, world, many)  # warm: the process learns the releases' ranges
    small = _count(client, engine, world, one)
    large = _count(client, engine, world, many)
    assert len(client.get(many, headers=world.auth("operator")).json()["items"]) == 50
    assert len(large) == len(small), (small, large)
    # Once warm, no release document (template bundles) is read on a list.
    assert not any("published_versions.release" in s for s in large), large


def test_instance_show_reads_no_release_documents_once_warm(
    client: TestClient, engine: Engine, world: World, tmp_path: Any
) -> None:
    _fleet(engine, tmp_path, {world.gent: 2})
    path = BASE.format(tenant=world.gent) + "/app000"
    first = client.get(path, headers=world.auth("operator"))
    assert first.status_code == 200
    seen = _count(client, engine, world, path)
    assert not any("published_versions.release" in s for s in seen), seen
    assert len(seen) <= len(_count(client, engine, world, BASE.format(tenant=world.gent)))


def test_cached_ranges_still_show_lifecycle_changes_at_once(
    client: TestClient, engine: Engine, world: World, tmp_path: Any
) -> None:
    """The per-process cache holds only immutable release facts: a deprecation shows at once."""
    _fleet(engine, tmp_path, {world.gent: 2})
    path = BASE.format(tenant=world.gent) + "/app000"  # demo 1.0.0; demo 1.1.0 is published
    before = client.get(path, headers=world.auth("operator")).json()["lifecycle"]
    assert before["upgrade_available"] == "1.1.0"
    assert before["deprecated"] is False
    r = client.post(
        "/api/v1/catalog/demo/versions/1.0.0/deprecate",
        json={"support_ends": "2031-06-30", "message": "move to 1.1"},
        headers=world.auth("operator"),
    )
    assert r.status_code == 200, r.text
    after = client.get(path, headers=world.auth("operator"))
    assert after.headers["ETag"] == '"1"'
    lifecycle = after.json()["lifecycle"]
    assert lifecycle["deprecated"] is True
    assert lifecycle["support_ends"] == "2031-06-30"
    assert lifecycle["upgrade_available"] == "1.1.0"
    listed = client.get(BASE.format(tenant=world.gent), headers=world.auth("operator")).json()
    assert [i["lifecycle"]["deprecated"] for i in listed["items"]] == [True, False]
