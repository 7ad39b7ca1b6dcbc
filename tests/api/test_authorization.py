"""The authorisation matrix: every endpoint x every role, plus a tenant-admin of another tenant.

Each cell is one of: allowed (2xx), denied (403) or hidden (404: another tenant's resource
must not even be seen to exist). Denied and hidden calls must change nothing, so each
endpoint is walked with the refused roles first and the allowed roles last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.auth.models import ApiToken, Role
from tests.api.conftest import World
from tests.factories import demo_release, make_token, publish_release

ROLES = ["other-admin", "tenant-viewer", "finance", "tenant-admin", "operator"]
OK, DENIED, HIDDEN = "ok", "denied", "hidden"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    expect: dict[str, str]
    body: Callable[[str], Any] | None = None
    csv: bool = False


def everyone(**overrides: str) -> dict[str, str]:
    return {role: overrides.get(role.replace("-", "_"), OK) for role in ROLES}


def operator_only(*, other: str = DENIED, read_roles: str = DENIED) -> dict[str, str]:
    return {
        "other-admin": other,
        "tenant-viewer": read_roles,
        "finance": read_roles,
        "tenant-admin": read_roles,
        "operator": OK,
    }


OWN_READ = everyone(other_admin=HIDDEN)
OWN_WRITE = {
    "other-admin": HIDDEN,
    "tenant-viewer": DENIED,
    "finance": DENIED,
    "tenant-admin": OK,
    "operator": OK,
}
OWN_TENANT_WRITE = {**OWN_WRITE, "tenant-admin": DENIED}
#: The demo service declares no administrator credentials: the allowed roles get past the
#: policy to the 409 that says so.
CREDENTIALS = {**OWN_WRITE, "tenant-admin": "409", "operator": "409"}
#: The default target keeps no backups: every reader gets past the policy to the 409.
BACKUPS = {role: ("409" if v == OK else v) for role, v in OWN_READ.items()}
READ_ALL_ROLES = {
    "other-admin": DENIED,
    "tenant-viewer": DENIED,
    "finance": OK,
    "tenant-admin": DENIED,
    "operator": OK,
}
FINANCE_WRITE = {
    "other-admin": DENIED,
    "tenant-viewer": DENIED,
    "finance": OK,
    "tenant-admin": DENIED,
    "operator": OK,
}
INST = "/api/v1/tenants/gent/instances"
BILL = "/api/v1/billing"
FLEET = "/api/v1/fleet"
CSV = "nis_code,name_nl,province,population,population_year\n11001,Aartselaar,Antwerpen,1,2020\n"


def _release(role: str) -> Any:
    return {"release": demo_release("3.0.0").model_dump(mode="json")}


ENDPOINTS = [
    Endpoint("GET", "/api/v1/whoami", everyone()),
    Endpoint("GET", "/api/v1/tenants", everyone()),
    Endpoint(
        "POST",
        "/api/v1/tenants",
        operator_only(),
        body=lambda role: {"name": "Zele", "nis_code": "42028"},
    ),
    Endpoint("POST", "/api/v1/tenants/import", operator_only(), csv=True),
    Endpoint("GET", "/api/v1/tenants/gent", OWN_READ),
    Endpoint("PATCH", "/api/v1/tenants/gent", OWN_TENANT_WRITE, body=lambda r: {"group": "x"}),
    Endpoint("GET", "/api/v1/tenants/gent/domains", OWN_READ),
    Endpoint(
        "POST",
        "/api/v1/tenants/gent/domains",
        OWN_TENANT_WRITE,
        body=lambda r: {"domain": "matrix.example"},
    ),
    Endpoint("DELETE", "/api/v1/tenants/gent/domains/matrix.example", OWN_TENANT_WRITE),
    Endpoint("GET", "/api/v1/catalog", everyone()),
    Endpoint("GET", "/api/v1/catalog/demo", everyone()),
    Endpoint("GET", "/api/v1/catalog/demo/versions/1.0.0", everyone()),
    Endpoint("POST", "/api/v1/catalog/publish", operator_only(), body=_release),
    Endpoint(
        "POST",
        "/api/v1/catalog/demo/versions/1.0.0/deprecate",
        operator_only(),
        body=lambda r: {"message": "old"},
    ),
    Endpoint("GET", INST, OWN_READ),
    Endpoint(
        "POST",
        INST,
        OWN_WRITE,
        body=lambda role: {"name": f"new-{role}", "service": "demo", "plan": "small"},
    ),
    Endpoint("GET", f"{INST}/web", OWN_READ),
    Endpoint("PATCH", f"{INST}/web", OWN_WRITE, body=lambda r: {"plan": "large"}),
    Endpoint("GET", f"{INST}/web/revisions", OWN_READ),
    Endpoint("POST", f"{INST}/web/rollback", OWN_WRITE, body=lambda r: {"revision": 1}),
    Endpoint("GET", f"{INST}/web/credentials", CREDENTIALS),
    Endpoint("POST", f"{INST}/web/credentials/rotate", CREDENTIALS),
    Endpoint("GET", f"{INST}/web/backups", BACKUPS),
    Endpoint("POST", f"{INST}/web/protection", OWN_WRITE),
    Endpoint("DELETE", f"{INST}/web/protection", OWN_WRITE),
    # Before the delete: the allowed roles pass the permission check and meet an instance
    # that is not retained (409 instance_not_retained); the others are refused as usual.
    Endpoint(
        "POST", f"{INST}/web/restore", {**OWN_WRITE, "tenant-admin": "409", "operator": "409"}
    ),
    Endpoint("DELETE", f"{INST}/web", OWN_WRITE),
    Endpoint("GET", "/api/v1/targets", READ_ALL_ROLES),
    Endpoint("GET", "/api/v1/targets/local", READ_ALL_ROLES),
    Endpoint(
        "POST",
        "/api/v1/targets",
        operator_only(),
        # A relative GitOps path lies under the GitOps root (<data_dir>/gitops here).
        body=lambda r: {"name": "git2", "config": {"kind": "gitops", "path": "git2"}},
    ),
    Endpoint("POST", "/api/v1/targets/git2/tenants/gent", operator_only()),
    Endpoint("GET", "/api/v1/targets/git2/tenants", READ_ALL_ROLES),
    Endpoint("DELETE", "/api/v1/targets/git2/tenants/gent", operator_only()),
    Endpoint("GET", "/api/v1/tokens", operator_only()),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        operator_only(),
        body=lambda r: {"name": "x", "role": "finance"},
    ),
    Endpoint("DELETE", "/api/v1/tokens/{victim_token_id}", operator_only()),
    Endpoint("GET", "/api/v1/audit", everyone()),
    Endpoint("GET", "/api/v1/audit?tenant=gent", OWN_READ),
    # Billing (docs/billing.md): reads for every role (tenant roles see their own tenant),
    # changes for finance and operators, reopening for operators only. Each role closes its
    # own period ({role_period}) so that the second close is not a conflict.
    Endpoint("GET", f"{BILL}/periods/2025-01/statements", everyone()),
    Endpoint("GET", f"{BILL}/periods/2025-01/statements/gent", OWN_READ),
    Endpoint("GET", f"{BILL}/periods/2025-01/statements/gent/pdf", OWN_READ),
    Endpoint("GET", f"{BILL}/periods/2025-01/export?format=csv", everyone()),
    Endpoint("POST", f"{BILL}/periods/{{role_period}}/close", FINANCE_WRITE),
    Endpoint("GET", f"{BILL}/periods/2025-01/closings", FINANCE_WRITE),
    Endpoint(
        "POST",
        f"{BILL}/periods/2025-02/reopen",
        operator_only(),
        body=lambda r: {"reason": "a late usage correction"},
    ),
    # Invoices: every role lists (tenant roles get their own tenant's only); an invoice
    # number nobody was issued is not found for anyone (the numbers reveal nothing).
    Endpoint("GET", f"{BILL}/invoices", everyone()),
    Endpoint("GET", f"{BILL}/invoices/9999999999", dict.fromkeys(ROLES, HIDDEN)),
    Endpoint("GET", f"{BILL}/invoices/9999999999/ubl", dict.fromkeys(ROLES, HIDDEN)),
    Endpoint("GET", f"{BILL}/prices", everyone()),
    Endpoint(
        "POST",
        f"{BILL}/prices",
        FINANCE_WRITE,
        body=lambda role: {
            "service": "demo",
            "plan": "small",
            "monthly_price": "12.00",
            "effective_from": f"2030-0{ROLES.index(role) + 1}-01",
        },
    ),
    Endpoint("GET", f"{BILL}/pools", everyone()),
    Endpoint(
        "POST",
        f"{BILL}/pools",
        FINANCE_WRITE,
        body=lambda role: {
            "name": f"pool-{role}",
            "kind": "platform",
            "monthly_amount": "100.00",
            "key": "equal",
            "effective_from": "2030-01-01",
        },
    ),
    Endpoint("GET", f"{BILL}/estimate?service=demo&plan=small&tenant=gent", OWN_READ),
    Endpoint("GET", f"{BILL}/rates", everyone()),
    Endpoint(
        "POST",
        f"{BILL}/rates",
        FINANCE_WRITE,
        body=lambda r: {
            "measure": "cpu_core_hours",
            "rate": "0.03",
            "effective_from": f"2030-0{ROLES.index(r) + 1}-01",
        },
    ),
    Endpoint("POST", f"{BILL}/usage", FINANCE_WRITE, body=lambda r: {"batch": r, "records": []}),
    Endpoint("GET", f"{BILL}/vat-rules", everyone()),
    Endpoint("PUT", f"{BILL}/vat-rules/service:demo", FINANCE_WRITE, body=lambda r: {"rate": "6"}),
    Endpoint("DELETE", f"{BILL}/vat-rules/service:demo", FINANCE_WRITE),
    # Fleet upgrades (docs/fleet.md): operators only, every other role 403.
    Endpoint(
        "POST",
        f"{FLEET}/plans",
        operator_only(),
        body=lambda r: {"service": "demo", "from": ">=1.2.0,<1.3.0", "to": "1.3.0"},
    ),
    Endpoint("GET", f"{FLEET}/plans", operator_only()),
    Endpoint("GET", f"{FLEET}/plans/{{plan_id}}", operator_only()),
    Endpoint("GET", f"{FLEET}/plans/{{plan_id}}/preview?instance=gent/fleet", operator_only()),
    Endpoint("GET", f"{FLEET}/runs", operator_only()),
    Endpoint("GET", f"{FLEET}/runs/{{run_id}}", operator_only()),
    Endpoint("POST", f"{FLEET}/runs/{{run_id}}/pause", operator_only()),
    Endpoint("POST", f"{FLEET}/runs/{{run_id}}/resume", operator_only()),
    Endpoint("POST", f"{FLEET}/runs/{{run_id}}/cancel", operator_only()),
    # After the cancel: one run per service at a time.
    Endpoint("POST", f"{FLEET}/runs", operator_only(), body=lambda r: {"plan_id": "{plan_id}"}),
    Endpoint("POST", "/api/v1/catalog/demo/versions/1.1.0/retire", operator_only()),
    Endpoint("GET", "/api/v1/catalog/demo/versions/1.1.0/impact", operator_only()),
    Endpoint("POST", "/api/v1/catalog/demo/versions/1.1.0/reactivate", operator_only()),
]

#: Billing periods closed by each role (see the close row).
ROLE_PERIODS = {
    "other-admin": "2025-05",
    "tenant-viewer": "2025-05",
    "finance": "2025-03",
    "tenant-admin": "2025-05",
    "operator": "2025-02",
}


def _seed_instance(client: TestClient, world: World, engine: Engine) -> dict[str, str]:
    from controlplane.provisioning.models import Instance, Phase, Revision, UsageEvent, UsageKind

    r = client.post(
        INST,
        json={"name": "web", "service": "demo", "version": "1.0.0", "plan": "small"},
        headers=world.auth("operator"),
    )
    assert r.status_code == 202, r.text
    with Session(engine) as s:
        instance = s.exec(select(Instance)).one()
        # As if the worker had applied it: fleet plans only take Ready instances.
        instance.phase = Phase.READY
        instance.observed_generation = instance.current_revision = 1
        s.add(instance)
        s.add(
            Revision(
                instance_id=instance.id,
                number=1,
                generation=1,
                version="1.0.0",
                plan="small",
                parameters={},
                digest="sha256:x",
            )
        )
        s.commit()
        # Two renderable versions and a Ready instance on the older one for the fleet rows
        # (the demo template renders to no object, so a plan would exclude "web").
        config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"
        publish_release(s, demo_release("1.2.0", template_text=config))
        publish_release(s, demo_release("1.3.0", upgrade_from=">=1.2.0", template_text=config))
        # Usage in the billed period, so that gent has a statement there.
        s.add(
            UsageEvent(
                instance_id=instance.id,
                tenant_id=instance.tenant_id,
                service="demo",
                plan="small",
                kind=UsageKind.STARTED,
                at=datetime(2025, 1, 10, tzinfo=UTC),
            )
        )
        s.add(
            Instance(
                tenant_id=instance.tenant_id,
                name="fleet",
                service="demo",
                version="1.2.0",
                plan="small",
                parameters={},
                target=instance.target,
                namespace="gent-fleet",
                phase=Phase.READY,
                observed_generation=1,
                current_revision=1,
            )
        )
        victim = make_token(s, Role.FINANCE, name="victim")
        s.commit()
        row = s.exec(select(ApiToken).where(ApiToken.prefix == victim.split("_")[1])).one()
        names = {"victim_token_id": str(row.id)}
    # Two fleet plans: one for the rows that read and act on a run, one the POST /runs row starts.
    fleet_plan = {"service": "demo", "from": ">=1.2.0,<1.3.0", "to": "1.3.0"}
    plans = [
        client.post(f"{FLEET}/plans", json=fleet_plan, headers=world.auth("operator"))
        for _ in range(2)
    ]
    assert all(p.status_code == 201 for p in plans), [p.text for p in plans]
    run = client.post(
        f"{FLEET}/runs", json={"plan_id": plans[0].json()["id"]}, headers=world.auth("operator")
    )
    assert run.status_code == 201, run.text
    names |= {"plan_id": plans[1].json()["id"], "run_id": run.json()["id"]}
    return names


def test_every_endpoint_for_every_role(client: TestClient, world: World, engine: Engine) -> None:
    names = _seed_instance(client, world, engine)
    openapi_paths = {
        (method.upper(), path)
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
        if path.startswith("/api/")
    }
    covered: set[tuple[str, str]] = set()
    failures: list[str] = []
    for endpoint in ENDPOINTS:
        # Refused roles first: they must not change anything the allowed ones rely on.
        order = sorted(ROLES, key=lambda r: endpoint.expect[r] == OK)
        for role in order:
            path = endpoint.path.format(**names, role_period=ROLE_PERIODS[role])
            headers = world.auth(role)
            kwargs: dict[str, Any] = {"headers": headers}
            if endpoint.csv:
                kwargs["content"] = CSV.encode()
                kwargs["headers"] = {**headers, "Content-Type": "text/csv"}
            elif endpoint.body is not None:
                kwargs["json"] = _fill(endpoint.body(role), names)
            response = client.request(endpoint.method, path, **kwargs)
            expected = endpoint.expect[role]
            got = (
                OK
                if response.status_code < 300
                else {403: DENIED, 404: HIDDEN}.get(response.status_code, str(response.status_code))
            )
            if got != expected:
                failures.append(
                    f"{endpoint.method} {path} as {role}: expected {expected}, got "
                    f"{response.status_code} {response.text[:200]}"
                )
        template = endpoint.path.split("?")[0]
        for known_method, known_path in openapi_paths:
            if known_method == endpoint.method and _matches(known_path, template):
                covered.add((known_method, known_path))
    assert not failures, "\n".join(failures)
    assert openapi_paths - covered == set(), "endpoints missing from the matrix"


def _fill(body: Any, names: dict[str, str]) -> Any:
    """The body with ``{plan_id}``-style placeholders in its string values filled in."""
    if isinstance(body, dict):
        return {k: v.format(**names) if isinstance(v, str) else v for k, v in body.items()}
    return body


def _matches(template: str, path: str) -> bool:
    a, b = template.strip("/").split("/"), path.strip("/").split("/")
    return len(a) == len(b) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(a, b, strict=True)
    )
