"""The chart with real Helm: lint, render per scenario, Kubernetes schemas, security policy,
the two modes' wiring, and bad values failing with the chart's own messages."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes_validate
import pytest

from tests.helm.conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    HelmFailedError,
    Installed,
    emulator_class,
    install_into,
    run_helm,
)
from tests.helm.policy import problems

pytestmark = pytest.mark.slow

KUBERNETES_VERSION = "1.33"
#: Custom resources: not in the official schemas, checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}
#: Helm's lint severities (pkg/lint/support): 1 info, 2 warning, 3 error.
LINT_WARNING = 2


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env") or []}


def test_lint_passes(helm_available: str) -> None:
    result = run_helm({"action": "lint", "chart": str(CHART)})
    serious = [m for m in result["Messages"] if m["Severity"] >= LINT_WARNING]
    assert result["TotalChartsLinted"] == 1
    assert not result["Errors"], result
    assert not serious, serious


def test_release_manifest_is_what_the_cluster_received(installed: Installed) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in installed.received}
    manifest = {(o["kind"], o["metadata"]["name"]) for o in installed.manifest}
    assert manifest, "the chart rendered nothing"
    assert manifest <= names
    assert installed.release["info"]["status"] == "deployed"


def test_every_object_passes_the_kubernetes_schemas(installed: Installed) -> None:
    checked = 0
    for obj in installed.received:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        # Raises with the field path when the object does not match the official schema.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 8


def test_every_workload_passes_the_security_policy(installed: Installed) -> None:
    workloads = [o for o in installed.received if o["kind"] in {"Deployment", "Job"}]
    assert workloads
    breaches = [p for obj in installed.received for p in problems(obj)]
    assert breaches == []


def test_every_object_carries_the_standard_labels(installed: Installed) -> None:
    for obj in installed.received:
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == RELEASE, obj["metadata"]["name"]
        assert labels.get("app.kubernetes.io/name") == "city-platform"
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"


def test_default_is_embedded_sqlite(helm_available: str) -> None:
    with emulator_class()(seed=0) as emulator:
        got = install_into(emulator, SCENARIOS["default"])
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
    assert got.of_kind("Job") == []
    secret = got.one("Secret", RELEASE)
    assert len(base64.b64decode(secret["data"]["server-secret"])) == 48
    assert "database-url" not in secret["data"]


def test_postgresql_scales_and_migrates_in_a_hook(helm_available: str) -> None:
    values = SCENARIOS["postgresql-3-replicas"]
    with emulator_class()(seed=0) as emulator:
        got = install_into(emulator, values)
        # hook-succeeded: the migration Job and its Secret are gone once they completed.
        assert emulator.get("Job", f"{RELEASE}-migrations", NAMESPACE) is None
        assert emulator.get("Secret", f"{RELEASE}-migrations", NAMESPACE) is None
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
    # The hook ran before any release object: it must not need the release's Secret.
    order = [(o["kind"], o["metadata"]["name"]) for o in got.received]
    assert order.index(("Job", f"{RELEASE}-migrations")) < order.index(
        ("Deployment", f"{RELEASE}-api")
    )
    ref = env_of(job["spec"]["template"]["spec"]["containers"][0])["CONTROLPLANE_DATABASE_URL"]
    hook_secret = got.one("Secret", ref["valueFrom"]["secretKeyRef"]["name"])
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    url = base64.b64decode(hook_secret["data"]["database-url"]).decode()
    assert url == values["database"]["url"]
    budgets = {p["metadata"]["name"] for p in got.of_kind("PodDisruptionBudget")}
    assert budgets == {f"{RELEASE}-api", f"{RELEASE}-worker"}


def test_existing_secret_is_used_and_no_secret_is_created(helm_available: str) -> None:
    with emulator_class()(seed=0) as emulator:
        got = install_into(emulator, SCENARIOS["postgresql-existing-secret-monitoring"])
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
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]


def test_ingress_routes_to_the_api_service(helm_available: str) -> None:
    with emulator_class()(seed=0) as emulator:
        got = install_into(emulator, SCENARIOS["ingress"])
    ingress = got.one("Ingress", f"{RELEASE}-api")
    service = got.one("Service", f"{RELEASE}-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert ingress["spec"]["rules"][0]["host"] == "platform.example.be"
    assert ingress["spec"]["tls"] == [
        {"secretName": "platform-tls", "hosts": ["platform.example.be"]}
    ]


def test_notes_tell_how_to_get_the_first_token(helm_available: str) -> None:
    with emulator_class()(seed=0) as emulator:
        got = install_into(emulator, {})
    notes = got.release["info"]["notes"]
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
def test_bad_values_fail_with_the_charts_message(helm_available: str, case: str) -> None:
    values, message = BAD_VALUES[case]
    with emulator_class()(seed=0) as emulator, pytest.raises(HelmFailedError) as failed:
        install_into(emulator, values)
    assert message in failed.value.message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"api": {"replica": 3}}, "at '/api': additional properties 'replica' not allowed"),
        ({"database": {"mode": "mysql"}}, "at '/database/mode': value must be one of 'sqlite'"),
    ],
)
def test_unknown_or_wrong_keys_fail_the_schema(
    helm_available: str, values: dict[str, Any], message: str
) -> None:
    with emulator_class()(seed=0) as emulator, pytest.raises(HelmFailedError) as failed:
        install_into(emulator, values)
    text = failed.value.message
    assert "values don't meet the specifications of the schema" in text
    assert message in text
