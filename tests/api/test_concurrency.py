"""20 concurrent creates of the same instance name on PostgreSQL: one wins, 19 get 409."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, func, select

from controlplane.api.app import create_app
from controlplane.auth.models import Role
from controlplane.db.engine import make_engine
from controlplane.provisioning.models import Instance, ReconcileRequest
from controlplane.settings import Settings
from tests.factories import (
    PostgresTemplate,
    make_tenant,
    make_token,
    publish_demo,
    serve_in_thread,
)

pytestmark = pytest.mark.postgres


def test_twenty_concurrent_creates_of_one_name(
    postgres_template: PostgresTemplate, tmp_path: Path
) -> None:
    with postgres_template.clone() as url:
        engine = make_engine(url, pool_size=25)
        with Session(engine) as s:
            make_tenant(s, "gent", name="Gent", nis_code="44021")
            token = make_token(s, Role.OPERATOR)
            publish_demo(s)
            s.commit()
        settings = Settings(data_dir=tmp_path, embedded_worker=False)
        app = create_app(settings, engine=engine)
        barrier = threading.Barrier(20)
        statuses: list[int] = []
        codes: list[str] = []
        lock = threading.Lock()

        def create(base: str) -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                barrier.wait()
                r = client.post(
                    "/api/v1/tenants/gent/instances",
                    json={"name": "web", "service": "demo", "plan": "small"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 409:
                    codes.append(r.json()["code"])

        with serve_in_thread(app) as base:
            threads = [threading.Thread(target=create, args=(base,)) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert sorted(statuses) == [202] + [409] * 19, statuses
        assert set(codes) == {"instance_exists"}
        with Session(engine) as s:
            live = s.exec(
                select(func.count()).select_from(Instance).where(col(Instance.deleted_at).is_(None))
            ).one()
            queued = s.exec(select(func.count()).select_from(ReconcileRequest)).one()
        assert (live, queued) == (1, 1)
        engine.dispose()
