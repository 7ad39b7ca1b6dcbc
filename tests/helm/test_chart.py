"""The chart with the real helm CLI: lint, render per scenario, Kubernetes schemas, security
policy, the two modes' wiring, and bad values failing with the chart's own messages.

What the real apiserver makes of the objects is test_cluster_install's subject."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes_validate
import pytest

from tests.helm.conftest import (
    CHART,
    RELEASE,
    SCENARIOS,
    HelmFailedError,
    Rendered,
    render,
    run_helm,
)
from tests.helm.policy import problems

pytestmark = pytest.mark.slow

KUBERNETES_VERSION = "1.33"
#: Custom resources: not in the official schemas, checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env") or []}


def test_lint_passes_strictly() -> None:
    # --strict: a warning fails too; helm exits non-zero and run_helm raises with its text.
    done = run_helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_release_renders_objects_and_hooks(rendered: Rendered) -> None:
    assert rendered.manifest, "the chart rendered nothing"
    hooks = {o["metadata"]["annotations"]["helm.sh/hook"] for o in rendered.hooks}
    assert "test" in hooks  # every mode has a `helm test`


def test_every_object_passes_the_kubernetes_schemas(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        # Raises with the field path when the object does not match the official schema.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 8


def test_every_workload_passes_the_security_policy(rendered: Rendered) -> None:
    workloads = [o for o in rendered.objects if o["kind"] in {"Deployment", "Job"}]
    assert workloads
    breaches = [p for obj in rendered.objects for p in problems(obj)]
    assert breaches == []


def test_every_object_carries_the_standard_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == RELEASE, obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/name") == "city-platform"
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"


def test_default_is_embedded_sqlite() -> None:
    got = render(SCENARIOS["default"])
    api = got.one("Deployment", f"{RELEASE}-api")
    spec = api["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    assert [c["args"] for c in pod["initContainers"]] == [["migrate"]]
    assert pod["automountServiceAccountToken"] is True  # the embedded worker applies stacks
    claim = got.one("PersistentVolumeClaim", f"{RELEASE}-data")
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert got.one("ConfigMap", RELEASE)["data"]["CONTROLPLANE_EMBEDDED_WORKER"] == "true"
    assert not [d for d in got.of_kind("Deployment") if d["metadata"]["name"].endswith("-worker")]
    # The single API pod migrates in its init container: no migration hook.
    assert [j["metadata"]["name"] for j in got.of_kind("Job")] == [f"{RELEASE}-test-api"]
    secret = got.one("Secret", RELEASE)
    assert len(base64.b64decode(secret["data"]["server-secret"])) == 48
    assert "database-url" not in secret["data"]


def test_postgresql_scales_and_migrates_in_a_hook() -> None:
    values = SCENARIOS["postgresql-3-replicas"]
    got = render(values)
    api = got.one("Deployment", f"{RELEASE}-api")
    worker = got.one("Deployment", f"{RELEASE}-worker")
    assert api["spec"]["replicas"] == 3
    assert worker["spec"]["replicas"] == 3
    assert api["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert worker["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    assert got.one("ConfigMap", RELEASE)["data"]["CONTROLPLANE_EMBEDDED_WORKER"] == "false"
    assert got.of_kind("PersistentVolumeClaim") == []
    job = got.one("Job", f"{RELEASE}-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # The hook runs before any release object exists (test_cluster_install checks the
    # order on the cluster): it must not need the release's Secret or ConfigMap.
    assert job not in got.manifest
    pod = job["spec"]["template"]["spec"]
    assert "envFrom" not in pod["containers"][0]
    ref = env_of(job["spec"]["template"]["spec"]["containers"][0])["CONTROLPLANE_DATABASE_URL"]
    hook_secret = got.one("Secret", ref["valueFrom"]["secretKeyRef"]["name"])
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    url = base64.b64decode(hook_secret["data"]["database-url"]).decode()
    assert url == values["database"]["url"]
    budgets = {p["metadata"]["name"] for p in got.of_kind("PodDisruptionBudget")}
    assert budgets == {f"{RELEASE}-api", f"{RELEASE}-worker"}


def test_existing_secret_is_used_and_no_secret_is_created() -> None:
    got = render(SCENARIOS["postgresql-existing-secret-monitoring"])
    assert got.of_kind("Secret") == []
    api = got.one("Deployment", f"{RELEASE}-api")["spec"]["template"]["spec"]
    env = env_of(api["containers"][0])
    assert env["CONTROLPLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "controlplane-credentials",
        "key": "database-url",
        "optional": False,
    }
    assert api["containers"][0]["image"].endswith("@sha256:" + "a" * 64)
    # worker.replicas 0 on PostgreSQL: the workers run inside the API pods.
    assert api["automountServiceAccountToken"] is True
    monitor = got.one("ServiceMonitor", f"{RELEASE}-api")
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]


def test_ingress_routes_to_the_api_service() -> None:
    got = render(SCENARIOS["ingress"])
    ingress = got.one("Ingress", f"{RELEASE}-api")
    service = got.one("Service", f"{RELEASE}-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert ingress["spec"]["rules"][0]["host"] == "platform.example.be"
    assert ingress["spec"]["tls"] == [
        {"secretName": "platform-tls", "hosts": ["platform.example.be"]}
    ]


def test_notes_tell_how_to_get_the_first_token() -> None:
    got = render({})
    notes = got.notes
    assert f"exec deploy/{RELEASE}-api -c api -- controlplane bootstrap" in notes


BAD_VALUES = {
    "three-replicas-on-sqlite": (
        {"api": {"replicas": 3}},
        'api.replicas is 3 but database.mode is "sqlite": SQLite allows exactly one API replica.',
    ),
    "postgresql-without-url": (
        {"database": {"mode": "postgresql"}},
        'database.mode is "postgresql" but neither database.url nor secret.existingSecret is set.',
    ),
    "workers-on-sqlite": (
        {"worker": {"replicas": 2}},
        'worker.replicas is 2 but database.mode is "sqlite"',
    ),
    "url-on-sqlite": (
        {"database": {"url": "postgresql+psycopg://a:b@c/d"}},
        'database.url is set but database.mode is "sqlite"',
    ),
    "latest-tag": (
        {"image": {"tag": "latest"}},
        'image.tag is "latest", which the platform policy refuses',
    ),
    "ingress-without-hosts": (
        {"ingress": {"enabled": True}},
        "ingress.enabled is true but ingress.hosts is empty.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_fail_with_the_charts_message(case: str) -> None:
    values, message = BAD_VALUES[case]
    with pytest.raises(HelmFailedError) as failed:
        render(values)
    assert message in failed.value.message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"api": {"replica": 3}}, "at '/api': additional properties 'replica' not allowed"),
        ({"database": {"mode": "mysql"}}, "at '/database/mode': value must be one of 'sqlite'"),
    ],
)
def test_unknown_or_wrong_keys_fail_the_schema(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailedError) as failed:
        render(values)
    text = failed.value.message
    assert "values don't meet the specifications of the schema" in text
    assert message in text


@pytest.mark.parametrize("scenario", ["default", "postgresql-3-replicas"])
def test_helm_test_asks_the_api_service_for_readiness(scenario: str) -> None:
    got = render(SCENARIOS[scenario])
    job = got.one("Job", f"{RELEASE}-test-api")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "test"
    # A passed test leaves nothing behind; a failed one stays for its logs until the next run.
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    service = got.one("Service", f"{RELEASE}-api")
    port = service["spec"]["ports"][0]["port"]
    assert container["command"][-1] == f"http://{RELEASE}-api:{port}/readyz"
    api = got.one("Deployment", f"{RELEASE}-api")["spec"]["template"]["spec"]
    assert container["image"] == api["containers"][0]["image"]
    assert pod["automountServiceAccountToken"] is False
