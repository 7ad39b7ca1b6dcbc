"""A valid release renders into a labelled, namespaced stack behind the baseline."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.catalog.models import ServiceRelease
from controlplane.errors import InvalidInput
from controlplane.rendering import (
    InstanceRef,
    PolicyViolation,
    Renderer,
    derive_secret,
    namespace_for,
    object_id,
)
from controlplane.rendering.baseline import bytes_quantity, cpu_quantity
from tests.rendering.conftest import INSTANCE, SERVER_SECRET, TENANT, RenderFn, edit

EXPECTED_LABELS = {
    "app.kubernetes.io/name": "webapp",
    "app.kubernetes.io/instance": "portal",
    "app.kubernetes.io/version": "1.0",
    "app.kubernetes.io/managed-by": "city-platform",
    "app.kubernetes.io/part-of": "gent--portal",
    "city-platform.be/tenant": "gent",
    "city-platform.be/instance-id": INSTANCE.id,
    "city-platform.be/service": "webapp",
    "city-platform.be/plan": "small",
}


def by_id(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_every_object_is_labelled_and_namespaced(render: RenderFn):
    stack = render()
    assert stack.namespace == "gent--portal"
    for obj in stack.objects:
        labels = obj["metadata"]["labels"]
        assert labels.items() >= EXPECTED_LABELS.items(), object_id(obj)
        if obj["kind"] == "Namespace":
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == "gent--portal", object_id(obj)


def test_pod_templates_carry_the_labels_and_keep_their_own(render: RenderFn):
    objects = by_id(render().objects)
    web = objects["Deployment/web"]["spec"]["template"]["metadata"]["labels"]
    assert web.items() >= EXPECTED_LABELS.items()
    assert web["app.kubernetes.io/component"] == "web"
    cron = objects["CronJob/cleanup"]["spec"]["jobTemplate"]
    assert cron["metadata"]["labels"].items() >= EXPECTED_LABELS.items()
    assert cron["spec"]["template"]["metadata"]["labels"].items() >= EXPECTED_LABELS.items()
    # The API server never updates volumeClaimTemplates: no label that a plan change or an
    # upgrade changes goes there.
    claim = objects["StatefulSet/db"]["spec"]["volumeClaimTemplates"][0]
    stable = {
        k: v
        for k, v in EXPECTED_LABELS.items()
        if k not in ("app.kubernetes.io/version", "city-platform.be/plan")
    }
    assert claim["metadata"]["labels"].items() >= stable.items()
    assert "app.kubernetes.io/version" not in claim["metadata"]["labels"]
    assert "city-platform.be/plan" not in claim["metadata"]["labels"]


def _volume_sizes(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    sizes = {
        f"PersistentVolumeClaim/{o['metadata']['name']}": o["spec"]["resources"]["requests"][
            "storage"
        ]
        for o in objects
        if o["kind"] == "PersistentVolumeClaim"
    }
    for o in objects:
        for claim in (o.get("spec") or {}).get("volumeClaimTemplates") or []:
            name = f"{o['kind']}/{o['metadata']['name']}/{claim['metadata']['name']}"
            sizes[name] = claim["spec"]["resources"]["requests"]["storage"]
    return sizes


def test_a_storage_floor_above_the_plan_sizes_every_plan_volume(render: RenderFn):
    # The instance once ran on "large" (10Gi) and is now on "small" (1Gi): volumes never shrink.
    stack = render(plan="small", storage_floor="10Gi")

    assert stack.storage == "10Gi"
    assert _volume_sizes(stack.objects) == {
        "PersistentVolumeClaim/media": "10Gi",
        "StatefulSet/db/data": "10Gi",
    }
    objects = by_id(stack.objects)
    assert objects["ResourceQuota/city-platform-quota"]["spec"]["hard"]["requests.storage"] == (
        "20Gi"
    )
    # Everything else follows the plan: its label, its container defaults.
    assert objects["ConfigMap/web"]["metadata"]["labels"]["city-platform.be/plan"] == "small"
    small = by_id(render(plan="small").objects)
    assert objects["LimitRange/city-platform-limits"] == small["LimitRange/city-platform-limits"]


@pytest.mark.parametrize("floor", [None, "512Mi", "1Gi", "1024Mi", "not a quantity"])
def test_a_storage_floor_at_or_below_the_plan_changes_nothing(render: RenderFn, floor: str | None):
    plain = render(plan="small")

    floored = render(plan="small", storage_floor=floor)

    assert floored.digest == plain.digest
    assert floored.storage == "1Gi"  # the plan's spelling, even when the floor is 1024Mi


def test_baseline_comes_first_in_apply_order(render: RenderFn):
    kinds = [o["kind"] for o in render().objects]
    assert kinds[:3] == ["Namespace", "ResourceQuota", "LimitRange"]
    first_stack = kinds.index("Secret")
    assert set(kinds[3:first_stack]) == {"NetworkPolicy"}


def test_namespace_enforces_restricted_pod_security(render: RenderFn):
    namespace = by_id(render().objects)["Namespace/gent--portal"]
    for mode in ("enforce", "audit", "warn"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_quota_adds_up_the_workloads(render: RenderFn):
    hard = by_id(render(plan="large").objects)["ResourceQuota/city-platform-quota"]["spec"]["hard"]
    # Plan "large": web 3 replicas + 1 surge at 1 CPU / 1Gi request, 2 CPU / 2Gi limit;
    # worker 1 + 1 surge at 100m/256Mi, 500m/512Mi; cleanup 1 at 50m/64Mi, 100m/128Mi;
    # postgres 1 at 250m/512Mi, 1/1Gi. The init container is smaller than the web one.
    assert hard["requests.cpu"] == cpu_quantity_of(4 * 1000 + 2 * 100 + 50 + 250)
    assert hard["limits.cpu"] == cpu_quantity_of(4 * 2000 + 2 * 500 + 100 + 1000)
    assert hard["requests.memory"] == f"{4 * 1024 + 2 * 256 + 64 + 512}Mi"
    assert hard["limits.memory"] == f"{4 * 2048 + 2 * 512 + 128 + 1024}Mi"
    # PVC "media" and one volumeClaimTemplate x 1 replica, each the plan's 10Gi.
    assert hard["requests.storage"] == "20Gi"
    assert hard["persistentvolumeclaims"] == "2"
    assert hard["pods"] == str(4 + 2 + 1 + 1)
    assert hard["services.nodeports"] == "0"
    assert hard["services.loadbalancers"] == "0"


def cpu_quantity_of(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def test_init_container_counts_when_it_is_the_largest(render: RenderFn, release: ServiceRelease):
    bigger = edit(
        release,
        "10-web.yaml.j2",
        "requests: {cpu: 100m, memory: 128Mi}",
        "requests: {cpu: 700m, memory: 128Mi}",
    )
    hard = by_id(render(bigger).objects)["ResourceQuota/city-platform-quota"]["spec"]["hard"]
    # small plan: web pod = max(250m app, 700m init) = 700m, x 2 pods.
    assert hard["requests.cpu"] == cpu_quantity_of(2 * 700 + 2 * 100 + 50 + 250)


def test_canonical_quantities():
    from decimal import Decimal

    assert cpu_quantity(Decimal("1.5")) == "1500m"
    assert cpu_quantity(Decimal(3)) == "3"
    assert cpu_quantity(Decimal("0.0001")) == "1m"
    assert bytes_quantity(Decimal(3 * 1024**3)) == "3Gi"
    assert bytes_quantity(Decimal(1536 * 1024**2)) == "1536Mi"
    assert bytes_quantity(Decimal(1000)) == "1000"
    assert bytes_quantity(Decimal(0)) == "0"


def test_limit_range_defaults_come_from_the_plan(render: RenderFn):
    limits = by_id(render(plan="large").objects)["LimitRange/city-platform-limits"]
    [container] = limits["spec"]["limits"]
    assert container["type"] == "Container"
    assert container["default"] == {"cpu": "2", "memory": "2Gi"}
    assert container["defaultRequest"] == {"cpu": "1", "memory": "1Gi"}


def test_network_policies(render: RenderFn):
    objects = by_id(render().objects)
    deny = objects["NetworkPolicy/city-platform-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = objects["NetworkPolicy/city-platform-allow-dns"]["spec"]["egress"][0]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    ingress = objects["NetworkPolicy/city-platform-allow-ingress-web-8080"]["spec"]
    assert ingress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert ingress["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert ingress["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    egress = objects["NetworkPolicy/city-platform-allow-egress-worker"]["spec"]["egress"][0]
    assert egress["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in egress["to"][0]["ipBlock"]["except"]
    assert "169.254.0.0/16" in egress["to"][0]["ipBlock"]["except"]
    assert [p["port"] for p in egress["ports"]] == [443, 587]


def test_ingress_namespace_is_an_option(release: ServiceRelease):
    renderer = Renderer(server_secret=SERVER_SECRET, ingress_namespace="traefik")
    stack = renderer.render(release, plan="small", tenant=TENANT, instance=INSTANCE, parameters={})
    policy = by_id(stack.objects)["NetworkPolicy/city-platform-allow-ingress-web-8080"]
    peer = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    assert peer == {"kubernetes.io/metadata.name": "traefik"}


def test_defaults_and_parameters_reach_the_templates(render: RenderFn):
    config = by_id(render(parameters={"mail": {"port": 25}}).objects)["ConfigMap/web"]["data"]
    assert config["SITE_TITLE"] == "Onze gemeente"
    assert config["MAIL_PORT"] == "25"
    assert config["MAIL_SENDER"] == "noreply@example.org"
    assert config["PUBLIC_URL"] == "https://portal-gent.apps.city-platform.local"


def test_resolve_parameters_applies_nested_defaults(renderer: Renderer, release: ServiceRelease):
    resolved = renderer.resolve_parameters(release, {"mail": {"sender": "a@b.be"}})
    assert resolved["mail"] == {"sender": "a@b.be", "port": 587}
    assert resolved["log_level"] == "info"


def test_secrets_are_derived_into_secret_objects(render: RenderFn):
    secret = by_id(render().objects)["Secret/db"]
    expected = derive_secret(SERVER_SECRET, INSTANCE.id, "db_password")
    assert secret["stringData"]["POSTGRES_PASSWORD"] == expected
    assert secret["stringData"]["DATABASE_URL"] == f"postgres://app:{expected}@db:5432/app"


def test_digest_is_stable_and_tracks_changes(render: RenderFn):
    first, again = render(), render()
    assert first.digest == again.digest
    assert first.digest.startswith("sha256:")
    changed = render(parameters={"site_title": "Stad Gent"})
    assert changed.digest != first.digest
    before, after = first.object_digests(), changed.object_digests()
    assert before.keys() == after.keys() == {object_id(o) for o in first.objects}
    differing = {key for key in before if before[key] != after[key]}
    assert differing == {"v1/ConfigMap/web", "apps/v1/Deployment/web"}


def test_another_instance_gets_other_credentials(render: RenderFn):
    other = render(instance=InstanceRef(name="portal", id="00000000-0000-4000-8000-000000000000"))
    mine = render()
    assert (
        by_id(other.objects)["Secret/db"]["stringData"]
        != by_id(mine.objects)["Secret/db"]["stringData"]
    )


def test_namespace_for():
    assert namespace_for("gent", "portal") == "gent--portal"
    with pytest.raises(InvalidInput) as caught:
        namespace_for("gent", "x" * 60)
    assert caught.value.errors[0].location == "instance.name"
    with pytest.raises(InvalidInput):
        namespace_for("gent", "Portal")


def test_policy_applies_to_every_container_kind(render: RenderFn, release: ServiceRelease):
    bad = edit(
        release,
        "10-web.yaml.j2",
        "limits: {cpu: 200m, memory: 256Mi}",
        "limits: {memory: 256Mi}",
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "Deployment/web: spec.template.spec.initContainers[0].resources.limits"


def test_unsupported_kubernetes_version():
    with pytest.raises(InvalidInput):
        Renderer(server_secret=b"x", kubernetes_version="1.2")


def test_partials_are_included_but_not_rendered_alone(render: RenderFn, release: ServiceRelease):
    from tests.rendering.conftest import with_files

    partial = "data:\n  TITLE: {{ params.site_title }}\n"
    extra = (
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n{% include "_data.yaml.j2" %}'
    )
    stack = render(
        with_files(release, **{"_data.yaml.j2": partial, "40-extra.yaml.j2": extra}),
        parameters={"site_title": "a\nb: c"},
    )
    names = [o["metadata"]["name"] for o in stack.objects if o["kind"] == "ConfigMap"]
    assert names == ["web", "extra"]
    assert by_id(stack.objects)["ConfigMap/extra"]["data"] == {"TITLE": "a\nb: c"}
