"""Item 9 of issue 13: targets are granted per tenant, and `target create` cannot aim the
server at files it must not touch.

A tenant role naming a target that exists but is not granted gets exactly the answer it
gets for a target that does not exist; a GitOps path must resolve (``..`` and symlinks
followed) under the GitOps root; a kubeconfig must parse and have the named context, and
no answer quotes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import World

TARGETS = "/api/v1/targets"
INST = "/api/v1/tenants/gent/instances"
CLUSTER_KUBECONFIG = Path(__file__).resolve().parents[2] / ".cluster" / "kubeconfig"


def _create_gitops(client: TestClient, world: World, name: str, path: str) -> Any:
    return client.post(
        TARGETS,
        json={"name": name, "config": {"kind": "gitops", "path": path}},
        headers=world.auth("operator"),
    )


def _place(client: TestClient, world: World, who: str, name: str, target: str | None) -> Any:
    body: dict[str, Any] = {"name": name, "service": "demo", "version": "1.0.0", "plan": "small"}
    if target is not None:
        body["target"] = target
    return client.post(INST, json=body, headers=world.auth(who))


def _comparable(response: Any, name: str) -> str:
    body = response.json()
    body.pop("request_id", None)
    return json.dumps(body, sort_keys=True).replace(name, "<NAME>")


# -- grants -------------------------------------------------------------------------------


def test_an_ungranted_target_answers_like_a_missing_one(client: TestClient, world: World) -> None:
    assert _create_gitops(client, world, "secret-cluster", "secret").status_code == 201
    assert _create_gitops(client, world, "other-place", "other").status_code == 201

    ungranted = _place(client, world, "tenant-admin", "web", "secret-cluster")
    missing = _place(client, world, "tenant-admin", "web", "no-such-target")

    assert ungranted.status_code == missing.status_code == 422
    assert _comparable(ungranted, "secret-cluster") == _comparable(missing, "no-such-target")
    for answer in (ungranted, missing):
        assert answer.json()["errors"] == [{"location": "target", "message": "unknown target"}]
        for other in ("other-place", "local", "gitops"):
            assert other not in answer.text
    assert "secret-cluster" not in missing.text
    # Nothing was created.
    assert client.get(INST, headers=world.auth("operator")).json()["items"] == []


def test_a_granted_target_can_be_named_and_only_by_its_tenant(
    client: TestClient, world: World
) -> None:
    assert _create_gitops(client, world, "prod-gent", "prod-gent").status_code == 201
    operator = world.auth("operator")

    granted = client.post(f"{TARGETS}/prod-gent/tenants/gent", headers=operator)
    assert granted.status_code == 201, granted.text
    assert granted.json()["tenant"] == "gent"
    again = client.post(f"{TARGETS}/prod-gent/tenants/gent", headers=operator)
    assert again.status_code == 200
    assert again.json()["granted_at"] == granted.json()["granted_at"]
    listed = client.get(f"{TARGETS}/prod-gent/tenants", headers=operator).json()["items"]
    assert [g["tenant"] for g in listed] == ["gent"]

    placed = _place(client, world, "tenant-admin", "web", "prod-gent")
    assert placed.status_code == 202, placed.text
    assert placed.json()["target"] == "prod-gent"

    brugge = client.post(
        "/api/v1/tenants/brugge/instances",
        json={"name": "web", "service": "demo", "plan": "small", "target": "prod-gent"},
        headers=world.auth("other-admin"),
    )
    assert brugge.status_code == 422
    assert brugge.json()["errors"] == [{"location": "target", "message": "unknown target"}]


def test_the_default_target_needs_no_grant(client: TestClient, world: World) -> None:
    placed = _place(client, world, "tenant-admin", "web", "local")
    assert placed.status_code == 202, placed.text
    assert placed.json()["target"] == "local"
    assert _place(client, world, "tenant-admin", "api", None).json()["target"] == "local"


def test_operators_are_told_why(client: TestClient, world: World) -> None:
    assert _create_gitops(client, world, "prod-gent", "prod-gent").status_code == 201
    refused = _place(client, world, "operator", "web", "prod-gent")
    assert refused.status_code == 422
    assert "not granted to tenant 'gent'" in refused.json()["detail"]
    assert "cityctl target grant prod-gent gent" in refused.json()["hint"]
    missing = _place(client, world, "operator", "web", "nope")
    assert "There is no target 'nope'" in missing.json()["detail"]
    assert "cityctl target list" in missing.json()["hint"]


def test_revoking_a_target_in_use_is_refused_with_the_instances(
    client: TestClient, world: World
) -> None:
    operator = world.auth("operator")
    assert _create_gitops(client, world, "prod-gent", "prod-gent").status_code == 201
    assert client.post(f"{TARGETS}/prod-gent/tenants/gent", headers=operator).status_code == 201
    assert _place(client, world, "tenant-admin", "web", "prod-gent").status_code == 202

    refused = client.delete(f"{TARGETS}/prod-gent/tenants/gent", headers=operator)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "target_in_use"
    assert "web" in refused.json()["detail"]
    listed = client.get(f"{TARGETS}/prod-gent/tenants", headers=operator).json()["items"]
    assert [g["tenant"] for g in listed] == ["gent"]

    # Brugge never had it: revoking is idempotent.
    assert client.delete(f"{TARGETS}/prod-gent/tenants/brugge", headers=operator).status_code == 204


def test_revoke_takes_the_target_away(client: TestClient, world: World) -> None:
    operator = world.auth("operator")
    assert _create_gitops(client, world, "prod-gent", "prod-gent").status_code == 201
    assert client.post(f"{TARGETS}/prod-gent/tenants/gent", headers=operator).status_code == 201
    assert client.delete(f"{TARGETS}/prod-gent/tenants/gent", headers=operator).status_code == 204
    assert client.get(f"{TARGETS}/prod-gent/tenants", headers=operator).json()["items"] == []
    assert _place(client, world, "tenant-admin", "web", "prod-gent").status_code == 422
    events = client.get("/api/v1/audit?limit=500", headers=operator).json()["items"]
    assert {"target.grant", "target.revoke"} <= {e["action"] for e in events}


def test_the_platform_default_cannot_be_revoked(client: TestClient, world: World) -> None:
    refused = client.delete(f"{TARGETS}/local/tenants/gent", headers=world.auth("operator"))
    assert refused.status_code == 409
    assert "default" in refused.json()["detail"]


@pytest.mark.parametrize("who", ["tenant-admin", "tenant-viewer", "finance"])
def test_only_operators_grant_and_revoke(client: TestClient, world: World, who: str) -> None:
    assert _create_gitops(client, world, "prod-gent", "prod-gent").status_code == 201
    headers = world.auth(who)
    assert client.post(f"{TARGETS}/prod-gent/tenants/gent", headers=headers).status_code == 403
    assert client.delete(f"{TARGETS}/prod-gent/tenants/gent", headers=headers).status_code == 403
    operator = world.auth("operator")
    assert client.get(f"{TARGETS}/prod-gent/tenants", headers=operator).json()["items"] == []


def test_granting_to_an_unknown_tenant_or_target_is_404(client: TestClient, world: World) -> None:
    operator = world.auth("operator")
    assert client.post(f"{TARGETS}/local/tenants/nobody", headers=operator).status_code == 404
    assert client.post(f"{TARGETS}/nothing/tenants/gent", headers=operator).status_code == 404


# -- GitOps paths -------------------------------------------------------------------------


def _refused_path(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert [e["location"] for e in response.json()["errors"]] == ["config.path"]


def test_a_gitops_path_outside_the_root_is_refused(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    _refused_path(_create_gitops(client, world, "cron", "/etc/cron.d"))
    root = tmp_path / "gitops"
    _refused_path(_create_gitops(client, world, "escape", f"{root}/../elsewhere"))
    _refused_path(_create_gitops(client, world, "escape2", "../elsewhere"))
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir(exist_ok=True)
    (root / "link").symlink_to(outside)
    _refused_path(_create_gitops(client, world, "symlink", "link"))
    _refused_path(_create_gitops(client, world, "symlink2", str(root / "link" / "deeper")))
    targets = client.get(TARGETS, headers=world.auth("operator")).json()["items"]
    assert [t["name"] for t in targets] == ["local"]


def test_a_gitops_path_under_the_root_is_stored_resolved(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    created = _create_gitops(client, world, "gent", "gent")
    assert created.status_code == 201, created.text
    assert created.json()["config"]["path"] == str((tmp_path / "gitops" / "gent").resolve())
    absolute = _create_gitops(client, world, "brugge", str(tmp_path / "gitops" / "x" / ".." / "b"))
    assert absolute.status_code == 201, absolute.text
    assert absolute.json()["config"]["path"] == str((tmp_path / "gitops" / "b").resolve())


# -- kubeconfigs --------------------------------------------------------------------------


def _create_kube(client: TestClient, world: World, **config: Any) -> Any:
    return client.post(
        TARGETS,
        json={"name": "cluster", "config": {"kind": "kubernetes", **config}},
        headers=world.auth("operator"),
    )


def _refused_kube(response: Any, location: str) -> None:
    assert response.status_code == 422, response.text
    assert [e["location"] for e in response.json()["errors"]] == [location]


def test_a_kubeconfig_that_is_not_one_is_refused_without_quoting_it(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    _refused_kube(
        _create_kube(client, world, kubeconfig=str(tmp_path / "nope")), "config.kubeconfig"
    )
    _refused_kube(_create_kube(client, world, kubeconfig=str(tmp_path)), "config.kubeconfig")
    secret = tmp_path / "not-a-kubeconfig"
    secret.write_text("root:$6$s3cr3t-hash:19000:0:99999:7:::\n[unclosed: {\n")
    refused = _create_kube(client, world, kubeconfig=str(secret))
    _refused_kube(refused, "config.kubeconfig")
    assert "s3cr3t" not in refused.text
    assert "unclosed" not in refused.text


def test_a_missing_context_is_refused_without_quoting_the_file(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: real\n"
        "contexts: [{name: real, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: tok-very-secret}}]\n"
    )
    refused = _create_kube(client, world, kubeconfig=str(kubeconfig), context="imaginary")
    _refused_kube(refused, "config.context")
    assert "tok-very-secret" not in refused.text
    assert "real" not in refused.text.replace("readable", "")

    broken = tmp_path / "broken"
    broken.write_text(
        kubeconfig.read_text().replace("clusters: [{name: c,", "clusters: [{name: d,")
    )
    _refused_kube(_create_kube(client, world, kubeconfig=str(broken)), "config.context")

    created = _create_kube(client, world, kubeconfig=str(kubeconfig), context="real")
    assert created.status_code == 201, created.text


@pytest.mark.skipif(not CLUSTER_KUBECONFIG.is_file(), reason="no local cluster kubeconfig")
def test_the_real_clusters_kubeconfig_is_accepted(client: TestClient, world: World) -> None:
    created = _create_kube(client, world, kubeconfig=str(CLUSTER_KUBECONFIG))
    assert created.status_code == 201, created.text
