"""Every bad input answers problem+json with a helpful detail, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.api.conftest import World

TABLES = (
    "tenants",
    "instances",
    "reconcile_requests",
    "published_versions",
    "targets",
    "audit_events",
    "api_tokens",
)
INST = "/api/v1/tenants/gent/instances"


def _dump(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as c:
        return {t: sorted(str(r) for r in c.execute(text(f"SELECT * FROM {t}"))) for t in TABLES}


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (method, path, request kwargs, status, a word the detail or an error must contain)
    ("POST", INST, {"content": b"{not json"}, 422, "JSON"),
    (
        "POST",
        INST,
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        422,
        "JSON",
    ),
    (
        "POST",
        INST,
        {"content": b"name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        422,
        "JSON",
    ),
    ("POST", INST, {"json": []}, 422, "object"),
    ("POST", INST, {"json": {"name": "x"}}, 422, "service"),
    (
        "POST",
        INST,
        {"json": {"name": "x", "service": "demo", "plan": "small", "extra": 1}},
        422,
        "extra",
    ),
    (
        "POST",
        INST,
        {
            "json": {
                "name": "x",
                "service": "demo",
                "plan": "small",
                "parameters": {"hostname": "a\u0000b"},
            }
        },
        422,
        "NUL",
    ),
    (
        "POST",
        INST,
        {
            "content": b'{"name":"x","service":"demo","plan":"small",'
            b'"parameters":{"replicas_hint":1e999}}',
            "headers": {"Content-Type": "application/json"},
        },
        422,
        "finite",
    ),
    (
        "POST",
        INST,
        {
            "json": {
                "name": "x",
                "service": "demo",
                "plan": "small",
                "parameters": {"replicas_hint": 10**40},
            }
        },
        422,
        "large",
    ),
    (
        "POST",
        INST,
        {
            "json": {
                "name": "x",
                "service": "demo",
                "plan": "small",
                "parameters": {"replicas_hint": 99},
            }
        },
        422,
        "replicas_hint",
    ),
    ("POST", INST, {"json": {"name": "x" * 300, "service": "demo", "plan": "small"}}, 422, "name"),
    ("POST", "/api/v1/tenants", {"json": {"name": "X", "nis_code": "4402"}}, 422, "nis_code"),
    (
        "POST",
        "/api/v1/tenants",
        {"json": {"name": "X", "nis_code": "44022", "max_instances": 10**12}},
        422,
        "max_instances",
    ),
    ("POST", "/api/v1/tenants", {"json": {"name": "\u0000", "nis_code": "44022"}}, 422, "NUL"),
    ("POST", "/api/v1/tenants", {"json": {"name": "!!!", "nis_code": "44022"}}, 422, "slug"),
    ("PATCH", "/api/v1/tenants/gent", {"json": {"status": "gone"}}, 422, "status"),
    (
        "PATCH",
        "/api/v1/tenants/gent",
        {"json": {"group": "x"}, "headers": {"If-Match": "garbage"}},
        412,
        "ETag",
    ),
    ("GET", "/api/v1/tenants/%00", {}, 404, "tenant"),
    ("GET", "/api/v1/tenants/GENT", {}, 404, "tenant"),
    ("GET", INST, {"params": {"limit": 0}}, 422, "limit"),
    ("GET", INST, {"params": {"limit": 10**30}}, 422, "limit"),
    ("GET", INST, {"params": {"cursor": "%%%"}}, 422, "cursor"),
    ("DELETE", "/api/v1/tokens/not-a-uuid", {}, 422, "token_id"),
    ("GET", "/api/v1/audit", {"params": {"since": "yesterday"}}, 422, "since"),
    ("GET", "/api/v1/nothing-here", {}, 404, "/api/v1/nothing-here"),
    ("PUT", "/api/v1/tenants", {}, 405, "not allowed"),
    (
        "POST",
        "/api/v1/tenants/import",
        {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "text/csv"}},
        422,
        "",
    ),
    ("POST", "/api/v1/catalog/publish", {"json": {"release": {"name": "x"}}}, 422, "release"),
    ("POST", "/api/v1/catalog/publish", {"json": {"service": "nope"}}, 404, "nope"),
    ("POST", "/api/v1/targets", {"json": {"name": "t", "config": {"kind": "ftp"}}}, 422, "config"),
    # A GitOps tree around the data directory would publish the server secret and sealing key.
    (
        "POST",
        "/api/v1/targets",
        {"json": {"name": "t", "config": {"kind": "gitops", "path": "/"}}},
        422,
        "data directory",
    ),
    ("POST", f"{INST}/web/rollback", {"json": {"revision": -1}}, 422, "revision"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "word"),
    BAD_REQUESTS,
    ids=[f"{m} {p} {i}" for i, (m, p, *_rest) in enumerate(BAD_REQUESTS)],
)
def test_bad_input_is_a_problem_and_changes_nothing(
    client: TestClient,
    world: World,
    engine: Engine,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    word: str,
) -> None:
    # Authenticating once stamps the token's last use; that is not a change of state.
    client.get("/api/v1/whoami", headers=world.auth("operator"))
    before = _dump(engine)
    kwargs = dict(kwargs)
    headers = {**world.auth("operator"), **kwargs.pop("headers", {})}
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]
    text_of_problem = problem["detail"] + " ".join(
        f"{e['location']} {e['message']}" for e in problem["errors"]
    )
    assert word.lower() in text_of_problem.lower(), problem
    assert _dump(engine) == before
