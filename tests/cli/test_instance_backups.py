"""`cityctl instance backups NAME`: what the database operator reports, read from the real cluster.

A running API (real worker) places a Keycloak instance on a Kubernetes target that declares
``cloudnative-pg``: its stack carries the CloudNativePG ``Cluster`` named ``postgres``, its
``ScheduledBackup`` and the Barman Cloud Plugin's ``ObjectStore`` (the plugin takes the
backups), accepted by the real CRDs. No operator runs in the test
cluster (its pods would never start under kwok), so the test writes what the operator would:
``Backup`` objects and their status, through the status subresource. The platform lists
exactly those, newest first, and a target without the capability says it keeps none.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.auth import tokens
from controlplane.auth.models import Role
from controlplane.db.sessions import open_session
from controlplane.provisioning.models import Target, TargetGrant, TargetKind
from tests.cli.conftest import Platform, serve_platform
from tests.cluster.fixtures import cluster  # noqa: F401
from tests.factories import make_tenant

CNPG = "postgresql.cnpg.io/v1"
PLUGIN = "barman-cloud.cloudnative-pg.io"


def _token(platform: Platform, role: Role, tenant_id: Any = None) -> str:
    for session in open_session(platform.engine):
        issued = tokens.create_token(
            session, name=f"{role}-{random.token_hex(3)}", role=role, tenant_id=tenant_id
        )
        session.commit()
    return issued.token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("backups"))


@pytest.fixture
def setup(
    served: Platform,
    cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    suffix = random.token_hex(3)
    slug, target = f"bak{suffix}", f"cnpg-{suffix}"
    keys = tmp_path / "backup.env"
    keys.write_text(f"ACCESS_KEY_ID=AK{suffix}\nSECRET_ACCESS_KEY=sk-{random.token_hex(16)}\n")
    for session in open_session(served.engine):
        tenant = make_tenant(session, slug)
        other = make_tenant(session, f"other{suffix}")
        row = Target(
            name=target,
            kind=TargetKind.KUBERNETES,
            config={
                "kubeconfig": str(cluster.kubeconfig),
                "backup_destination": f"s3://city-backups/{suffix}",
                "backup_credentials_file": str(keys),
            },
            kubernetes_version="1.34",
            capabilities=["cloudnative-pg"],
        )
        session.add(row)
        session.flush()
        session.add(TargetGrant(target_id=row.id, tenant_id=tenant.id, granted_by="test"))
        session.commit()
        ids = (tenant.id, other.id)
    operator = _token(served, Role.OPERATOR)
    served.ok("catalog", "publish", token=operator)
    yield {
        "slug": slug,
        "target": target,
        "admin": _token(served, Role.TENANT_ADMIN, ids[0]),
        "viewer": _token(served, Role.TENANT_VIEWER, ids[0]),
        "stranger": _token(served, Role.TENANT_ADMIN, ids[1]),
    }
    cluster.kubectl("delete", "namespace", f"{slug}--login", "--wait=false", "--ignore-not-found")


def _backup(tmp: Path, cluster: Any, namespace: str, name: str, status: dict[str, Any]) -> None:  # noqa: F811
    """A Backup of the ``postgres`` Cluster as its ScheduledBackup makes one, then the
    status the operator would write (through the status subresource, as the operator does)."""
    manifest = {
        "apiVersion": CNPG,
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"cnpg.io/scheduled-backup": "postgres-daily"},
        },
        "spec": {
            "cluster": {"name": "postgres"},
            "method": "plugin",
            "pluginConfiguration": {"name": PLUGIN},
        },
    }
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(manifest))
    cluster.kubectl("apply", "-f", str(path))
    if status:
        cluster.kubectl(
            "patch", "backup", name, "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": status}),
        )  # fmt: skip


def test_backups_as_the_operator_reports_them(
    served: Platform,
    setup: dict[str, Any],
    cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    slug, admin = setup["slug"], setup["admin"]
    namespace = f"{slug}--login"
    created = served.run(
        "instance", "create", "login", "--service", "keycloak", "--plan", "small",
        "--target", setup["target"], "--tenant", slug, token=admin,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    # The platform's own stack made the database Cluster and its schedule.
    cluster.wait_for(
        "the CloudNativePG Cluster of the instance",
        lambda: cluster.get("Cluster", "postgres", namespace, api_version=CNPG),
        timeout=180,
    )

    # Ready only from what the operator reports: none runs here, so the instance waits and
    # says why; once the operator's status says the database is ready, it is Ready.
    def shown() -> dict[str, Any]:
        return served.json("instance", "show", "login", "--tenant", slug, token=admin)

    waiting = cluster.wait_for(
        "the instance to wait for the database",
        lambda: (
            (i := shown())["status"]["message"]
            and "operator has not reported" in i["status"]["message"]
            and i
        ),
        timeout=180,
    )
    assert waiting["status"]["phase"] != "Ready"
    cluster.kubectl(
        "patch", "cluster", "postgres", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {
            "phase": "Cluster in healthy state", "readyInstances": 1, "instances": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                            "message": "Cluster is Ready",
                            "lastTransitionTime": "2026-11-30T00:00:00Z"}],
        }}),
    )  # fmt: skip
    cluster.wait_for(
        "the instance Ready", lambda: shown()["status"]["phase"] == "Ready", timeout=180
    )
    schedules = cluster.objects("ScheduledBackup", namespace, api_version=CNPG)
    assert [s["spec"]["cluster"]["name"] for s in schedules] == ["postgres"]
    assert [s["spec"]["method"] for s in schedules] == ["plugin"]
    stores = cluster.objects("ObjectStore", namespace, api_version="barmancloud.cnpg.io/v1")
    assert [s["metadata"]["name"] for s in stores] == ["postgres"]

    empty = served.run("instance", "backups", "login", "--tenant", slug, token=admin)
    assert empty.exit_code == 0, empty.stderr
    assert "No backups of login yet." in empty.stderr
    assert schedules[0]["spec"]["schedule"] in empty.stderr

    _backup(tmp_path, cluster, namespace, "postgres-daily-1", {
        "phase": "completed", "method": "plugin",
        "startedAt": "2026-11-28T03:00:04Z", "stoppedAt": "2026-11-28T03:01:10Z",
    })  # fmt: skip
    _backup(tmp_path, cluster, namespace, "postgres-daily-2", {
        "phase": "failed", "method": "plugin", "error": "no space left on bucket",
        "startedAt": "2026-11-29T03:00:02Z", "stoppedAt": "2026-11-29T03:00:09Z",
    })  # fmt: skip
    _backup(tmp_path, cluster, namespace, "postgres-daily-3", {})  # not reported on yet

    listed = served.json("instance", "backups", "login", "--tenant", slug, token=admin)
    assert listed["namespace"] == namespace
    assert [(b["name"], b["phase"]) for b in listed["backups"]] == [
        ("postgres-daily-2", "failed"),
        ("postgres-daily-1", "completed"),
        ("postgres-daily-3", "pending"),
    ]
    assert listed["backups"][0]["error"] == "no space left on bucket"
    assert listed["backups"][1]["started_at"].startswith("2026-11-28T03:00:04")
    assert listed["backups"][1]["schedule"] == "postgres-daily"
    # Nothing claimed the operator did not report: no recovery window without its status.
    assert listed["recoverable_from"] is None

    # The Barman Cloud Plugin reports the window on the instance's ObjectStore, per server.
    cluster.kubectl(
        "patch", "objectstore", "postgres", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"serverRecoveryWindow": {"postgres": {
            "firstRecoverabilityPoint": "2026-11-28T03:01:10Z",
            "lastSuccessfulBackupTime": "2026-11-28T03:01:10Z",
        }}}}),
    )  # fmt: skip
    windowed = served.json("instance", "backups", "login", "--tenant", slug, token=admin)
    assert windowed["recoverable_from"].startswith("2026-11-28T03:01:10")
    assert windowed["last_successful"].startswith("2026-11-28T03:01:10")

    table = served.run("instance", "backups", "login", "--tenant", slug, token=admin)
    assert table.exit_code == 0, table.stderr
    assert "postgres-daily-2" in table.stdout
    assert "failed" in table.stdout
    assert "recoverable to any point in time from 2026-11-28T03:01:10" in table.stderr
    # A viewer of the tenant may read them; another tenant's admin does not see the instance.
    viewer = served.json("instance", "backups", "login", "--tenant", slug, token=setup["viewer"])
    assert len(viewer["backups"]) == 3
    stranger = served.run("instance", "backups", "login", "--tenant", slug, token=setup["stranger"])
    assert stranger.exit_code != 0
    assert "postgres-daily" not in stranger.stdout + stranger.stderr


def test_target_without_the_capability_keeps_no_backups(
    served: Platform, setup: dict[str, Any]
) -> None:
    slug, admin = setup["slug"], setup["admin"]
    created = served.run(
        "instance", "create", "portal", "--service", "keycloak", "--plan", "small",
        "--tenant", slug, token=admin,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    refused = served.run("instance", "backups", "portal", "--tenant", slug, token=admin)
    assert refused.exit_code == 5, refused.stderr  # 409
    assert "keeps no backups" in refused.stderr
    assert "cloudnative-pg" in refused.stderr
    assert str(served.data_dir) not in refused.stderr
