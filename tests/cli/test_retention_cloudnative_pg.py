"""Retention of a CloudNativePG database (issue 18), through cityctl against a running API.

On a ``cloudnative-pg`` target the database is the operator's: its claims belong to the
``Cluster`` (deleting it would delete them), and its backups to the ``ObjectStore`` and the
``ScheduledBackup``. So delete must keep those very objects (same UIDs) with the Cluster
hibernated and the schedule suspended, while the workloads go; restore must wake them and
bring the instance back to Ready; purge must leave nothing. No operator runs in the test
cluster: the test writes the status the operator would (the database Ready), through the
status subresource.
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
PLUGIN = "barmancloud.cnpg.io/v1"
READY = {
    "status": {
        "phase": "Cluster in healthy state",
        "readyInstances": 1,
        "instances": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ClusterIsReady",
                "message": "Cluster is Ready",
                "lastTransitionTime": "2026-11-30T00:00:00Z",
            }
        ],
    }
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("retention-cnpg"))


@pytest.fixture
def world(
    served: Platform,
    cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    suffix = random.token_hex(3)
    slug, target = f"ret{suffix}", f"cnpg-{suffix}"
    keys = tmp_path / "backup.env"
    keys.write_text(f"ACCESS_KEY_ID=AK{suffix}\nSECRET_ACCESS_KEY=sk-{random.token_hex(16)}\n")
    for session in open_session(served.engine):
        tenant = make_tenant(session, slug)
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
        operator = tokens.create_token(session, name=f"op-{suffix}", role=Role.OPERATOR)
        admin = tokens.create_token(
            session, name=f"adm-{suffix}", role=Role.TENANT_ADMIN, tenant_id=tenant.id
        )
        session.commit()
    served.ok("catalog", "publish", token=operator.token)
    yield {"slug": slug, "target": target, "admin": admin.token}
    cluster.kubectl("delete", "namespace", f"{slug}--login", "--wait=false", "--ignore-not-found")


def _uids(cluster: Any, namespace: str) -> dict[str, str]:  # noqa: F811
    """The database's objects (kind -> UID) as the cluster holds them now."""
    found = {}
    for kind, api, name in (
        ("Cluster", CNPG, "postgres"),
        ("ScheduledBackup", CNPG, "postgres-daily"),
        ("ObjectStore", PLUGIN, "postgres"),
        ("Secret", "v1", "postgres-app"),
        ("Secret", "v1", "backup-object-store"),
    ):
        live = cluster.get(kind, name, namespace, api_version=api)
        if live is not None and not live["metadata"].get("deletion_timestamp"):
            found[f"{kind}/{name}"] = live["metadata"]["uid"]
    return found


def test_delete_keeps_the_database_hibernated_restore_wakes_it_purge_removes_it(
    served: Platform,
    world: dict[str, str],
    cluster: Any,  # noqa: F811
) -> None:
    slug, admin = world["slug"], world["admin"]
    namespace = f"{slug}--login"

    def phase() -> str:
        shown = served.json("instance", "show", "login", "--tenant", slug, token=admin)
        return str(shown["status"]["phase"])

    def database_ready() -> None:
        cluster.kubectl(
            "patch", "cluster", "postgres", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(READY),
        )  # fmt: skip

    created = served.run(
        "instance", "create", "login", "--service", "keycloak", "--plan", "small",
        "--target", world["target"], "--tenant", slug, token=admin,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    cluster.wait_for(
        "the database Cluster",
        lambda: cluster.get("Cluster", "postgres", namespace, api_version=CNPG),
        timeout=180,
    )
    database_ready()
    cluster.wait_for("the instance Ready", lambda: phase() == "Ready", timeout=180)
    before = _uids(cluster, namespace)
    assert len(before) == 5, before

    deleted = served.run("instance", "delete", "login", "--yes", "--tenant", slug, token=admin)
    assert deleted.exit_code == 0, deleted.stderr
    cluster.wait_for("the instance Retained", lambda: phase() == "Retained", timeout=180)
    # The workloads went; the database's objects are the very same ones, asleep.
    deployments = cluster.objects("Deployment", namespace, api_version="apps/v1")
    assert [d for d in deployments if not d["metadata"].get("deletion_timestamp")] == []
    assert _uids(cluster, namespace) == before
    sleeping = cluster.get("Cluster", "postgres", namespace, api_version=CNPG)
    assert sleeping["metadata"]["annotations"]["cnpg.io/hibernation"] == "on"
    schedule = cluster.get("ScheduledBackup", "postgres-daily", namespace, api_version=CNPG)
    assert schedule["spec"]["suspend"] is True

    restored = served.run("instance", "restore", "login", "--tenant", slug, token=admin)
    assert restored.exit_code == 0, restored.stderr
    cluster.wait_for(
        "the Cluster awake",
        lambda: (
            "cnpg.io/hibernation"
            not in (
                cluster.get("Cluster", "postgres", namespace, api_version=CNPG)["metadata"].get(
                    "annotations"
                )
                or {}
            )
        ),
        timeout=180,
    )
    database_ready()
    cluster.wait_for("the instance Ready again", lambda: phase() == "Ready", timeout=180)
    assert _uids(cluster, namespace) == before
    schedule = cluster.get("ScheduledBackup", "postgres-daily", namespace, api_version=CNPG)
    assert not schedule["spec"].get("suspend")

    purged = served.run(
        "instance", "delete", "login", "--purge", "--yes", "--tenant", slug, token=admin
    )
    assert purged.exit_code == 0, purged.stderr

    def gone() -> bool:
        live = cluster.get("Namespace", namespace, api_version="v1")
        return live is None or live.get("status", {}).get("phase") == "Terminating"

    cluster.wait_for("the namespace gone or terminating", gone, timeout=180)
