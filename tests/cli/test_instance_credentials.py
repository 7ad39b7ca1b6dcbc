"""`cityctl instance credentials NAME`: the initial administrator, read from the real cluster.

A running API (real worker) places a Keycloak instance on a Kubernetes target that is the
shared test cluster; the credentials come back from the live Secret, to a tenant-admin of
the tenant only, audited without the values, and never written to logs or the database.
"""

from __future__ import annotations

import base64
import logging
import secrets as random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from controlplane.auth import tokens
from controlplane.auth.models import Role
from controlplane.db.sessions import open_session
from controlplane.provisioning.models import Target, TargetGrant, TargetKind
from tests.cli.conftest import Platform, serve_platform
from tests.cluster.fixtures import cluster  # noqa: F401
from tests.factories import make_tenant


def _token(platform: Platform, role: Role, tenant_id: Any = None) -> str:
    for session in open_session(platform.engine):
        issued = tokens.create_token(
            session, name=f"{role}-{random.token_hex(3)}", role=role, tenant_id=tenant_id
        )
        session.commit()
    return issued.token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("credentials"))


@pytest.fixture
def setup(served: Platform, cluster: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    suffix = random.token_hex(3)
    slug, target = f"cred{suffix}", f"k8s-{suffix}"
    for session in open_session(served.engine):
        tenant = make_tenant(session, slug)
        other = make_tenant(session, f"other{suffix}")
        row = Target(
            name=target,
            kind=TargetKind.KUBERNETES,
            config={"kubeconfig": str(cluster.kubeconfig)},
            kubernetes_version="1.34",
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
        "operator": operator,
        "admin": _token(served, Role.TENANT_ADMIN, ids[0]),
        "viewer": _token(served, Role.TENANT_VIEWER, ids[0]),
        "stranger": _token(served, Role.TENANT_ADMIN, ids[1]),
    }
    cluster.kubectl("delete", "namespace", f"{slug}--login", "--wait=false", "--ignore-not-found")


def test_show_refusals_and_secrecy(
    served: Platform,
    setup: dict[str, Any],
    cluster: Any,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    slug, admin = setup["slug"], setup["admin"]
    created = served.run(
        "instance", "create", "login", "--service", "keycloak", "--plan", "small",
        "--target", setup["target"], "--tenant", slug, "--wait", "--timeout", "300",
        token=admin,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr

    shown = served.json("instance", "credentials", "login", "--tenant", slug, token=admin)
    assert shown["secret"] == "keycloak"
    assert shown["namespace"] == f"{slug}--login"
    assert "Keycloak creates" in shown["note"]
    live = cluster.get("Secret", "keycloak", f"{slug}--login")
    data = {k: base64.b64decode(v).decode() for k, v in live["data"].items()}
    assert shown["username"] == data["KC_BOOTSTRAP_ADMIN_USERNAME"]
    assert shown["password"] == data["KC_BOOTSTRAP_ADMIN_PASSWORD"]
    password = shown["password"]
    assert len(password) >= 32

    printed = served.ok("instance", "credentials", "login", "--tenant", slug, token=admin)
    assert f"password: {password}" in printed.stdout
    assert "Secret keycloak" in printed.stdout
    # An operator may read them too (audited like anyone else's read).
    assert (
        served.json("instance", "credentials", "login", "--tenant", slug, token=setup["operator"])[
            "password"
        ]
        == password
    )

    viewer = served.run("instance", "credentials", "login", "--tenant", slug, token=setup["viewer"])
    assert viewer.exit_code != 0
    assert "may not read credentials" in viewer.stderr
    assert password not in viewer.stdout + viewer.stderr
    stranger = served.run(
        "instance", "credentials", "login", "--tenant", slug, token=setup["stranger"]
    )
    assert stranger.exit_code != 0
    assert password not in stranger.stdout + stranger.stderr

    audit = served.json("audit", "list", "--tenant", slug, token=setup["operator"])
    reads = [e for e in audit if e["action"] == "instance.credentials.read"]
    assert len(reads) == 3
    assert password not in str(audit)

    # --rotate asks (naming the instance), then replaces the password and shows the new one.
    asked = served.run(
        "instance", "credentials", "login", "--rotate", "--tenant", slug, token=admin, input="n\n"
    )
    assert asked.exit_code != 0
    assert "instance login" in asked.stderr
    viewer_rotates = served.run(
        "instance", "credentials", "login", "--rotate", "--yes", "--tenant", slug,
        token=setup["viewer"],
    )  # fmt: skip
    assert viewer_rotates.exit_code != 0
    assert "tenant-viewer may not change" in viewer_rotates.stderr
    before = served.json("instance", "show", "login", "--tenant", slug, token=admin)
    rotated = served.json(
        "instance", "credentials", "login", "--rotate", "--yes", "--timeout", "300",
        "--tenant", slug, token=admin,
    )  # fmt: skip
    new_password = rotated["password"]
    assert new_password != password
    assert rotated["username"] == shown["username"]
    after = served.json("instance", "show", "login", "--tenant", slug, token=admin)
    assert after["generation"] == before["generation"] + 1
    assert after["status"]["phase"] == "Ready"
    live = cluster.get("Secret", "keycloak", f"{slug}--login")
    assert base64.b64decode(live["data"]["KC_BOOTSTRAP_ADMIN_PASSWORD"]).decode() == new_password
    audit = served.json("audit", "list", "--tenant", slug, token=setup["operator"])
    assert [e["action"] for e in audit].count("instance.credentials.rotate") == 1
    assert new_password not in str(audit)

    # Never logged, never in the database.
    for secret_value in (password, new_password):
        assert secret_value not in caplog.text
        with served.engine.connect() as conn:
            tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            for (table,) in list(tables):
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    assert secret_value not in str(row), table


def test_gitops_target_says_where_the_sealed_secret_is(
    served: Platform, setup: dict[str, Any]
) -> None:
    slug, admin = setup["slug"], setup["admin"]
    created = served.run(
        "instance", "create", "portal", "--service", "keycloak", "--plan", "small",
        "--tenant", slug, token=admin,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    deadline = time.monotonic() + 120
    while served.json("instance", "show", "portal", "--tenant", slug, token=admin)["status"][
        "phase"
    ] not in {"Committed", "Ready", "Failed"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    refused = served.run("instance", "credentials", "portal", "--tenant", slug, token=admin)
    assert refused.exit_code != 0
    assert "SealedSecret `keycloak`" in refused.stderr
    assert f"namespace `{slug}--portal`" in refused.stderr
    assert f"kubectl get secret keycloak -n {slug}--portal" in refused.stderr
    assert str(served.data_dir) not in refused.stderr
