"""End to end: `cityctl fleet` against a served control plane whose embedded worker runs
the fleet executor with the real clock (the production wiring of docs/fleet.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from controlplane.auth.models import Role
from controlplane.catalog.publishing import publish_release
from controlplane.tenants.models import Tenant
from tests.cli.conftest import Platform, serve_platform
from tests.provisioning.fleet_support import shop_release


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    yield from serve_platform(tmp_path)


def _wait(condition: object, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_plan_run_and_status_through_cityctl(platform: Platform) -> None:
    p = platform
    with Session(p.engine) as session:
        for version in ("1.0.0", "2.0.0"):
            publish_release(session, shop_release(version))
        session.add(Tenant(slug="gent", name="Gent", nis_code="44021"))
        session.commit()
    token = p.issue_token(Role.OPERATOR, "fleet-ops")
    for name in ("a", "b"):
        p.ok(
            "instance", "create", name, "--tenant", "gent", "--service", "shop",
            "--version", "1.0.0", "--plan", "small", token=token,
        )  # fmt: skip

    def ready() -> bool:
        items = p.json("instance", "list", "--tenant", "gent", token=token)
        return all(i["status"]["phase"] == i["settles_at"] for i in items)

    _wait(ready, "the instances to be Ready")
    plan = p.json("fleet", "plan", "-s", "shop", "--from", "<2.0.0", "--to", "2.0.0", token=token)
    assert [i["instance"] for i in plan["items"]] == ["a", "b"]
    assert plan["items"][0]["changes"]["added"] == ["apps/v1/Deployment/web"]
    preview = p.json("fleet", "preview", plan["id"], "gent/a", token=token)
    assert preview["changes"] == plan["items"][0]["changes"]
    run = p.json("fleet", "run", plan["id"], token=token)
    assert run["status"] == "running"
    _wait(
        lambda: p.json("fleet", "status", run["id"], token=token)["status"] == "succeeded",
        "the run to succeed",
    )
    for item in p.json("instance", "list", "--tenant", "gent", token=token):
        assert item["version"] == "2.0.0"
        assert item["lifecycle"]["upgrade_available"] is None
    table = p.ok("fleet", "status", run["id"], token=token).stdout
    assert "succeeded" in table
