"""Names the outside world sees (namespaces, host names, domains) never cross tenants.

Issue 13, items 1 and 2: ``tielt``'s instance ``winge-forms`` and ``tielt-winge``'s
``forms`` both became the namespace ``tielt-winge-forms`` (one took over the other's
Secrets, deleting it deleted the victim's volumes); tenant slugs reached ``kube-…``
namespaces; any tenant could set its ``hostname`` to another tenant's host or domain.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import kubernetes.client
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.kube.client import KubeClient
from controlplane.provisioning.models import Instance
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.kubernetes import KubernetesTarget, NamespaceOwned
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.naming import namespace_for, standard_labels
from controlplane.tenants.names import name_problem
from tests.cluster.fixtures import Cluster, cluster  # noqa: F401 (fixture)
from tests.factories import make_tenant
from tests.security.conftest import World

TENANTS = "/api/v1/tenants"
HINT = "cityctl tenant domain add"


def _create(
    client: TestClient,
    headers: dict[str, str],
    tenant: str,
    name: str,
    parameters: dict[str, Any] | None = None,
) -> Any:
    return client.post(
        f"{TENANTS}/{tenant}/instances",
        json={
            "name": name,
            "service": "demo",
            "version": "1.0.0",
            "plan": "small",
            "parameters": parameters or {},
        },
        headers=headers,
    )


def _problem(response: Any, status: int, location: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert location in [e["location"] for e in body["errors"]], body
    return body


def _tielt(engine: Engine) -> None:
    with Session(engine) as session:
        make_tenant(session, "tielt", name="Tielt", nis_code="37015")
        make_tenant(session, "tielt-winge", name="Tielt-Winge", nis_code="24135")
        session.commit()


# -- item 1: namespaces -------------------------------------------------------------------


def test_tielt_and_tielt_winge_get_different_namespaces(
    client: TestClient, world: World, engine: Engine
) -> None:
    _tielt(engine)
    operator = world.auth("operator")
    first = _create(client, operator, "tielt", "winge-forms")
    second = _create(client, operator, "tielt-winge", "forms")
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["namespace"] == "tielt--winge-forms"
    assert second.json()["namespace"] == "tielt-winge--forms"


def test_the_database_refuses_two_live_instances_in_one_namespace(engine: Engine) -> None:
    """Even rows written past admission (legacy data, a race) cannot share a namespace."""
    _tielt(engine)
    with Session(engine) as session:
        tielt = session.exec(select(Instance).limit(1)).first()
        assert tielt is None
        from controlplane.tenants.services import get_tenant

        a, b = get_tenant(session, "tielt"), get_tenant(session, "tielt-winge")

        def row(tenant_id: uuid.UUID, name: str) -> Instance:
            return Instance(
                tenant_id=tenant_id,
                name=name,
                service="demo",
                version="1.0.0",
                plan="small",
                target="local",
                namespace="tielt-winge-forms",  # the old, ambiguous mapping of both
            )

        session.add(row(a.id, "winge-forms"))
        session.commit()
        session.add(row(b.id, "forms"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # Another target, or a deleted row, does not hold the namespace.
        other = row(b.id, "forms")
        other.target = "elsewhere"
        session.add(other)
        session.commit()


@pytest.mark.parametrize(
    "slug", ["kube-system", "kube", "default", "kube-public", "cert-manager", "ingress-nginx"]
)
def test_reserved_slugs_are_refused(client: TestClient, world: World, slug: str) -> None:
    response = client.post(
        TENANTS,
        json={"name": "Evil", "nis_code": "99999", "slug": slug},
        headers=world.auth("operator"),
    )
    body = _problem(response, 422, "slug")
    assert "reserved" in response.text, body
    assert "cityctl tenant create --slug" in (body["hint"] or "")


@pytest.mark.parametrize("slug", ["tielt--winge", "a--b"])
def test_slugs_with_the_separator_are_refused(client: TestClient, world: World, slug: str) -> None:
    response = client.post(
        TENANTS,
        json={"name": "Evil", "nis_code": "99998", "slug": slug},
        headers=world.auth("operator"),
    )
    _problem(response, 422, "slug")


@pytest.mark.parametrize("name", ["winge--forms", "web\n", "-web", "Web"])
def test_instance_names_with_the_separator_are_refused(
    client: TestClient, world: World, name: str
) -> None:
    response = _create(client, world.auth("operator"), "gent", name)
    assert response.status_code == 422, response.text
    assert "name" in [e["location"] for e in response.json()["errors"]]


_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?", fullmatch=True).filter(
    lambda s: name_problem(s, max_length=40) is None
)


@settings(max_examples=500, deadline=None)
@given(st.tuples(_LABEL, _LABEL), st.tuples(_LABEL, _LABEL))
def test_namespace_for_is_injective(first: tuple[str, str], second: tuple[str, str]) -> None:
    """Any two different (tenant, instance) pairs that pass the rules get two namespaces."""
    if first != second:
        assert namespace_for(*first) != namespace_for(*second)
    else:
        assert namespace_for(*first) == namespace_for(*second)


def test_the_renderer_uses_the_stored_namespace_and_hostname() -> None:
    """Existing instances keep ``<tenant>-<instance>``; the admitted host reaches old templates."""
    release = next(r for r in load_catalog().releases() if r.name == "keycloak")
    renderer = Renderer(server_secret=b"names")
    instance = InstanceRef(
        name="portal", id=str(uuid.uuid4()), namespace="gent-portal", hostname="loket.gent.be"
    )
    tenant = TenantRef(slug="gent", name="Gent", nis_code="44021")
    plan = release.plans[0].name
    stack = renderer.render(release, plan=plan, tenant=tenant, instance=instance, parameters={})
    assert stack.namespace == "gent-portal"
    assert {o["metadata"].get("namespace") for o in stack.objects} <= {"gent-portal", None}
    text = str(stack.objects)
    assert "loket.gent.be" in text
    assert "portal-gent." not in text


# -- item 1: the owner label on the real cluster --------------------------------------------


def _stack(namespace: str, tenant: str, instance: str, instance_id: str, data: str) -> Stack:
    labels = standard_labels(
        service="demo",
        app_version="1.0.0",
        instance_name=instance,
        instance_id=instance_id,
        tenant_slug=tenant,
        namespace=namespace,
        plan="small",
    )
    objects = (
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace, "labels": labels},
            "data": {"owner": data},
        },
    )
    digests = {f"v1/{o['kind']}/{o['metadata']['name']}": f"sha256:{data}" for o in objects}
    return Stack(
        tenant=tenant,
        instance=instance,
        instance_id=instance_id,
        namespace=namespace,
        objects=objects,
        digests=digests,
    )


@pytest.mark.cluster
def test_a_namespace_owned_by_another_instance_is_never_written_or_deleted(
    cluster: Cluster,  # noqa: F811
) -> None:
    namespace = f"t-names-owner-{secrets.token_hex(4)}"
    target = KubernetesTarget(KubeClient(cluster.api_client), name="names")
    victim = _stack(namespace, "tielt-winge", "forms", str(uuid.uuid4()), "victim")
    intruder = _stack(namespace, "tielt", "winge-forms", str(uuid.uuid4()), "intruder")
    core = kubernetes.client.CoreV1Api(cluster.api_client)
    try:
        target.apply(victim)
        before = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
        assert before is not None

        with pytest.raises(NamespaceOwned) as refused:
            target.apply(intruder)
        assert refused.value.reason == "NamespaceOwnedByAnotherInstance"
        assert namespace in refused.value.detail
        assert "nothing was written" in refused.value.detail

        after = cluster.get("ConfigMap", "settings", namespace, api_version="v1")
        assert after is not None
        assert after["data"] == {"owner": "victim"}
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        live_ns = cluster.get("Namespace", namespace, api_version="v1")
        assert live_ns is not None
        labels = live_ns["metadata"]["labels"]
        assert labels["city-platform.be/instance-id"] == victim.instance_id

        # Deleting the intruder leaves the victim's namespace alone.
        deletion = target.delete(tenant="tielt", instance="winge-forms", namespace=namespace)
        assert deletion is None or deletion.gone
        still = cluster.get("Namespace", namespace, api_version="v1")
        assert still is not None
        assert not still["metadata"].get("deletionTimestamp")
        assert cluster.get("ConfigMap", "settings", namespace, api_version="v1") is not None
    finally:
        try:
            core.delete_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


# -- item 2: host names ---------------------------------------------------------------------


def test_the_default_host_is_per_tenant_and_stored(client: TestClient, world: World) -> None:
    gent = _create(client, world.auth("operator"), "gent", "web")
    brugge = _create(client, world.auth("operator"), "brugge", "web")
    assert gent.status_code == brugge.status_code == 202
    assert gent.json()["hostname"] == "web.gent.apps.city-platform.local"
    assert brugge.json()["hostname"] == "web.brugge.apps.city-platform.local"


@pytest.mark.parametrize(
    "hostname",
    [
        "web.gent.apps.city-platform.local",  # gent's default host
        "web-gent.apps.city-platform.local",  # gent's default host of the frozen templates
        "login.gent.be",  # in gent's granted domain
        "gent.be",  # gent's granted domain itself
        "www.antwerpen.be",  # nobody's domain
        "apps.city-platform.local",  # the platform's own domain
        "login.brugge.be\n",  # a trailing newline must not pass
    ],
)
def test_a_tenant_cannot_take_a_host_it_was_not_given(
    client: TestClient, world: World, hostname: str
) -> None:
    response = _create(client, world.auth("other-admin"), "brugge", "web", {"hostname": hostname})
    body = _problem(response, 422, "parameters.hostname")
    if "\n" not in hostname:
        assert HINT in (body["hint"] or ""), body


def test_changing_the_host_by_patch_is_checked_too(client: TestClient, world: World) -> None:
    admin = world.auth("other-admin")
    assert _create(client, admin, "brugge", "web").status_code == 202
    response = client.patch(
        f"{TENANTS}/brugge/instances/web",
        json={"parameters": {"hostname": "login.gent.be"}},
        headers=admin,
    )
    body = _problem(response, 422, "parameters.hostname")
    assert HINT in (body["hint"] or "")


def test_two_instances_cannot_share_a_host(client: TestClient, world: World) -> None:
    admin = world.auth("tenant-admin")
    first = _create(client, admin, "gent", "login", {"hostname": "login.gent.be"})
    assert first.status_code == 202, first.text
    assert first.json()["hostname"] == "login.gent.be"
    second = _create(client, admin, "gent", "login2", {"hostname": "login.gent.be"})
    _problem(second, 409, "parameters.hostname")
    # A default host claimed explicitly by another instance of the same tenant.
    third = _create(
        client, admin, "gent", "other", {"hostname": "login2.gent.apps.city-platform.local"}
    )
    assert third.status_code == 202, third.text
    clash = _create(client, admin, "gent", "login2")
    _problem(clash, 409, "parameters.hostname")


def test_the_database_refuses_two_live_instances_on_one_host(engine: Engine) -> None:
    with Session(engine) as session:
        tenant = make_tenant(session, "hosts")

        def row(name: str) -> Instance:
            return Instance(
                tenant_id=tenant.id,
                name=name,
                service="demo",
                version="1.0.0",
                plan="small",
                target="local",
                namespace=f"hosts--{name}",
                hostname="login.gent.be",
            )

        session.add(row("a"))
        session.commit()
        session.add(row("b"))
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_granted_domain_is_accepted_and_can_be_managed(client: TestClient, world: World) -> None:
    operator = world.auth("operator")
    grant = client.post(f"{TENANTS}/brugge/domains", json={"domain": "brugge.be"}, headers=operator)
    assert grant.status_code == 201, grant.text
    again = client.post(f"{TENANTS}/brugge/domains", json={"domain": "brugge.be"}, headers=operator)
    assert again.status_code == 200
    listed = client.get(f"{TENANTS}/brugge/domains", headers=world.auth("other-admin"))
    assert [d["domain"] for d in listed.json()] == ["brugge.be"]

    created = _create(
        client, world.auth("other-admin"), "brugge", "web", {"hostname": "e-loket.brugge.be"}
    )
    assert created.status_code == 202, created.text
    assert created.json()["hostname"] == "e-loket.brugge.be"

    in_use = client.delete(f"{TENANTS}/brugge/domains/brugge.be", headers=operator)
    _problem(in_use, 409, "domain")
    # A tenant cannot grant itself a domain.
    refused = client.post(
        f"{TENANTS}/brugge/domains", json={"domain": "x.be"}, headers=world.auth("other-admin")
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("domain", "status"),
    [
        ("gent.be", 409),  # granted to gent
        ("login.gent.be", 409),  # below gent's domain
        ("be", 422),  # a top-level domain
        ("apps.city-platform.local", 422),  # the platform's own domain
        ("brugge.apps.city-platform.local", 422),  # a tenant zone is never granted
        ("city-platform.local", 422),  # above the platform's domain
        ("brugge.be\n", 422),
    ],
)
def test_domains_that_cannot_be_granted(
    client: TestClient, world: World, domain: str, status: int
) -> None:
    response = client.post(
        f"{TENANTS}/brugge/domains", json={"domain": domain}, headers=world.auth("operator")
    )
    _problem(response, status, "domain")


def test_shipped_municipalities_pass_the_slug_rules() -> None:
    from controlplane.tenants.importing import parse_csv
    from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
    from controlplane.tenants.services import slug_from_name, slug_problem

    rows = parse_csv(FLEMISH_MUNICIPALITIES_CSV.read_text(encoding="utf-8"))
    assert len(rows) == 285
    slugs = {slug_from_name(r.name) for r in rows}
    assert {"tielt", "tielt-winge"} <= slugs
    assert [s for s in slugs if slug_problem(s) is not None] == []
