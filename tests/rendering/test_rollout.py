"""Pod templates carry a keyed digest of the ConfigMaps and Secrets they read
(``controlplane.rendering.rollout``), so that a configuration change rolls exactly them."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import canonical_json
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.catalog_checks import stack_check
from controlplane.rendering.policy import pod_templates
from controlplane.rendering.rollout import (
    ANNOTATION,
    digest_key,
    references,
    stamp_config_digests,
)

KEY = digest_key(b"test-server-secret", "6f1c2a9e-1d1b-4c55-9d0e-0c1f6f3b2a10")
PASSWORD = "hunter2"


def _config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _secret(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def _deployment(name: str, **pod_spec: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "app", "image": "app:1"}], **pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}},
    }


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "app:1", **fields}


def _stack() -> list[dict[str, Any]]:
    """One workload per way of reading configuration, and one that reads none."""
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cron"},
        "spec": {
            "schedule": "@daily",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [_container(envFrom=[{"secretRef": {"name": "creds"}}])]
                        }
                    }
                }
            },
        },
    }
    return [
        _config_map("env-cm", A="1"),
        _config_map("from-cm", B="1"),
        _config_map("vol-cm", C="1"),
        _config_map("proj-cm", D="1"),
        _config_map("init-cm", E="1"),
        _secret("creds", PASSWORD=PASSWORD),
        _deployment(
            "env",
            containers=[
                _container(
                    env=[
                        {
                            "name": "A",
                            "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "A"}},
                        }
                    ]
                )
            ],
        ),
        _deployment(
            "envfrom", containers=[_container(envFrom=[{"configMapRef": {"name": "from-cm"}}])]
        ),
        _deployment("volume", volumes=[{"name": "v", "configMap": {"name": "vol-cm"}}]),
        _deployment(
            "projected",
            volumes=[{"name": "v", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}}],
        ),
        _deployment(
            "init", initContainers=[_container(envFrom=[{"configMapRef": {"name": "init-cm"}}])]
        ),
        _deployment(
            "secret-env",
            containers=[
                _container(
                    env=[
                        {
                            "name": "P",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}},
                        }
                    ]
                )
            ],
        ),
        _deployment("secret-volume", volumes=[{"name": "s", "secret": {"secretName": "creds"}}]),
        _deployment(
            "secret-projected",
            volumes=[{"name": "s", "projected": {"sources": [{"secret": {"name": "creds"}}]}}],
        ),
        cron,
        _deployment("plain"),
        # Reads a ConfigMap that the stack does not render: ignored.
        _deployment(
            "outside", containers=[_container(envFrom=[{"configMapRef": {"name": "other"}}])]
        ),
    ]


def _annotations(stack: list[dict[str, Any]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for obj in stack:
        for _, template in pod_templates(obj):
            found[obj["metadata"]["name"]] = (
                (template.get("metadata") or {}).get("annotations") or {}
            ).get(ANNOTATION)
    return found


def _stamped(stack: list[dict[str, Any]], key: bytes = KEY) -> dict[str, str | None]:
    stack = copy.deepcopy(stack)
    stamp_config_digests(stack, key=key)
    return _annotations(stack)


def _changed(before: dict[str, str | None], after: dict[str, str | None]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_only_templates_that_read_stack_configuration_are_annotated() -> None:
    found = _stamped(_stack())
    assert found["plain"] is None
    assert found["outside"] is None
    assert {name for name, value in found.items() if value} == {
        "env", "envfrom", "volume", "projected", "init",
        "secret-env", "secret-volume", "secret-projected", "cron",
    }  # fmt: skip
    assert all(
        re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", value) for value in found.values() if value
    )


@pytest.mark.parametrize(
    ("config_map", "reader"),
    [
        ("env-cm", "env"),
        ("from-cm", "envfrom"),
        ("vol-cm", "volume"),
        ("proj-cm", "projected"),
        ("init-cm", "init"),
    ],
)
def test_a_config_map_change_rolls_exactly_its_readers(config_map: str, reader: str) -> None:
    stack = _stack()
    before = _stamped(stack)
    for obj in stack:
        if obj["metadata"]["name"] == config_map:
            obj["data"] = {**obj["data"], "NEW": "value"}
    assert _changed(before, _stamped(stack)) == {reader}


def test_a_secret_change_rolls_exactly_its_readers() -> None:
    stack = _stack()
    before = _stamped(stack)
    stack[5]["stringData"]["PASSWORD"] = "rotated"
    assert _changed(before, _stamped(stack)) == {
        "secret-env",
        "secret-volume",
        "secret-projected",
        "cron",
    }


def test_a_change_outside_the_data_rolls_nothing() -> None:
    stack = _stack()
    before = _stamped(stack)
    stack[0]["metadata"]["labels"] = {"x": "y"}
    assert _changed(before, _stamped(stack)) == set()


def test_the_annotation_is_keyed_and_shows_no_secret_value() -> None:
    found = _stamped(_stack())
    value = found["secret-env"]
    assert value is not None
    assert PASSWORD not in value
    # A guessed password cannot be tested with a plain hash of the Secret's data …
    content = [["Secret", "creds", {"stringData": {"PASSWORD": PASSWORD}}]]
    plain = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    assert plain not in value
    # … and the same data in another instance (another key) gives another digest.
    other = _stamped(_stack(), key=digest_key(b"test-server-secret", "another-instance"))
    assert other["secret-env"] != value


def test_references_cover_every_way_of_reading() -> None:
    spec = _stack()[6]["spec"]["template"]["spec"]
    assert references(spec) == {("ConfigMap", "env-cm")}


# --- the shipped catalogue -------------------------------------------------------------

TENANT = TenantRef(slug="gent", name="Stad Gent", nis_code="44021")
INSTANCE = InstanceRef(name="cloud", id="0b7a4d4e-9d43-4d8e-9a57-5c1f2e3d4a10")


def _templates_of(objects: Any) -> dict[str, dict[str, Any]]:
    return {
        f"{obj['kind']}/{obj['metadata']['name']}": template
        for obj in objects
        for _, template in pod_templates(obj)
    }


def test_a_nextcloud_mail_parameter_rolls_the_pods_that_read_its_config_map() -> None:
    release = load_catalog().release("nextcloud", "30.0.2")
    renderer = Renderer(server_secret=b"test-server-secret")

    def render(parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
        stack = renderer.render(
            release, plan="small", tenant=TENANT, instance=INSTANCE, parameters=parameters
        )
        return _templates_of(stack.objects)

    before = render({})
    after = render({"mail_domain": "gent.be"})
    changed = {name for name in before if before[name] != after[name]}
    # The web Deployment and the cron CronJob read ConfigMap nextcloud; the database and
    # redis do not, so they must not roll.
    assert changed == {"Deployment/web", "CronJob/cron"}
    assert (
        before["Deployment/web"]["metadata"]["annotations"][ANNOTATION]
        != after["Deployment/web"]["metadata"]["annotations"][ANNOTATION]
    )
    assert ANNOTATION not in (before["Deployment/redis"]["metadata"].get("annotations") or {})


def test_every_shipped_stack_renders_with_digests_on_its_configuration_readers() -> None:
    catalog = load_catalog()
    check = stack_check("1.33")
    for release in catalog.releases():
        for plan in release.plans:
            objects = check(release, plan, {})  # raises on any policy or schema problem
            config = {
                (o["kind"], o["metadata"]["name"]): o
                for o in objects
                if o["kind"] in {"ConfigMap", "Secret"}
            }
            values = {
                str(v)
                for o in config.values()
                if o["kind"] == "Secret"
                for v in (o.get("stringData") or {}).values()
            }
            for obj in objects:
                for _, template in pod_templates(obj):
                    reads = references(template["spec"]) & set(config)
                    annotation = ((template.get("metadata") or {}).get("annotations") or {}).get(
                        ANNOTATION
                    )
                    where = f"{release.name} {release.version.version} {obj['metadata']['name']}"
                    if obj["kind"] == "Job" or not reads:
                        assert annotation is None, where
                    else:
                        assert annotation, where
                        assert not any(v and v in annotation for v in values), where
