"""`controlplane catalog render`: the whole stack, typed --set values, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml_rs
from typer.testing import CliRunner

from controlplane.commands import app
from controlplane.commands.catalog import OFFLINE_SECRET, offline_instance_id
from controlplane.rendering import derive_secret
from tests.catalog.fixture_catalog import FixtureCatalog

STANDARD_LABELS = {
    "app.kubernetes.io/name": "demo",
    "app.kubernetes.io/instance": "web1",
    "app.kubernetes.io/version": "1.1",
    "app.kubernetes.io/managed-by": "city-platform",
    "app.kubernetes.io/part-of": "gent--web1",
    "city-platform.be/tenant": "gent",
    "city-platform.be/service": "demo",
    "city-platform.be/plan": "large",
}
CLUSTER_SCOPED = {"Namespace"}


def render(runner: CliRunner, fc: FixtureCatalog, *args: str) -> Any:
    return runner.invoke(
        app,
        ["catalog", "render", "demo", "--catalog", str(fc.catalog_dir), *args],
    )


def objects_of(runner: CliRunner, fc: FixtureCatalog, *args: str) -> list[dict[str, Any]]:
    result = render(runner, fc, "-o", "json", *args)
    assert result.exit_code == 0, result.output
    loaded = json.loads(result.stdout)
    assert isinstance(loaded, list)
    return loaded


def env_of(objects: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_json_is_one_list_of_objects_with_namespace_and_labels(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    objects = objects_of(
        runner, fixture_catalog, "--tenant", "gent", "--instance", "web1", "--plan", "large"
    )
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace"
    assert {"Secret", "Deployment", "Service", "PersistentVolumeClaim"} <= set(kinds)
    for obj in objects:
        metadata = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert metadata["name"] == "gent--web1"
        else:
            assert metadata["namespace"] == "gent--web1", obj["kind"]
        assert STANDARD_LABELS.items() <= metadata["labels"].items(), obj["kind"]
        assert metadata["labels"]["city-platform.be/instance-id"] == offline_instance_id(
            "gent", "web1"
        )
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2  # the large plan


def test_yaml_is_the_same_objects_as_documents(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    as_json = objects_of(runner, fixture_catalog)
    result = render(runner, fixture_catalog, "-o", "yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\n")
    assert result.stdout.count("\n---\n") == len(as_json) - 1
    documents = yaml_rs.loads(result.stdout, parse_datetime=False)
    assert documents == as_json


def test_defaults_are_the_newest_active_version_and_the_first_plan(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    objects = objects_of(runner, fixture_catalog)
    labels = objects[0]["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "1.1"
    assert labels["city-platform.be/plan"] == "small"
    assert objects[0]["metadata"]["name"] == "demo--demo"


def test_an_older_version_renders_with_a_warning_when_deprecated(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    result = render(runner, fixture_catalog, "--version", "1.0.0", "-o", "json")
    assert result.exit_code == 0, result.output
    assert "PersistentVolumeClaim" not in {o["kind"] for o in json.loads(result.stdout)}
    assert "1.0.0 is deprecated" in result.stderr


def test_set_values_are_typed_by_the_schema_and_nested(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    objects = objects_of(
        runner,
        fixture_catalog,
        "--set",
        "workers=3",
        "--set",
        "smtp.port=25",
        "--set",
        "greeting=hi: there\n---\nkind: Pod",
    )
    env = env_of(objects)
    assert env["WORKERS"] == "3"
    assert env["SMTP_PORT"] == "25"
    assert env["GREETING"] == "hi: there\n---\nkind: Pod"
    assert [o["kind"] for o in objects].count("Pod") == 0


@pytest.mark.parametrize(
    ("setting", "location", "rule"),
    [
        ("workers=99", "parameters.workers", "must be at most 8"),
        ("workers=many", "parameters.workers", "must be an integer (got 'many')"),
        ("debug=perhaps", "parameters.debug", "must be true or false"),
        ("smtp.port=0", "parameters.smtp.port", "must be at least 1"),
        ("greeting=" + "x" * 41, "parameters.greeting", "at most 40 characters"),
    ],
)
def test_a_bad_value_names_the_parameter_and_the_rule(
    runner: CliRunner, fixture_catalog: FixtureCatalog, setting: str, location: str, rule: str
) -> None:
    result = render(runner, fixture_catalog, "--set", setting)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert any(line.startswith(f"{location}: ") and rule in line for line in lines), lines


def test_an_unknown_parameter_lists_the_known_ones(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    result = render(runner, fixture_catalog, "--set", "colour=blue", "--set", "smtp.host=x")
    assert result.exit_code == 1
    assert (
        "parameters.colour: unknown parameter (parameters of the service: debug, greeting, "
        "smtp, workers)" in result.stderr
    )
    assert "parameters.smtp.host: unknown parameter (parameters of smtp: port)" in result.stderr


def test_a_set_without_equals_sign(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    result = render(runner, fixture_catalog, "--set", "workers")
    assert result.exit_code == 1
    assert "expected key=value" in result.stderr


@pytest.mark.parametrize(
    ("args", "problem", "hint"),
    [
        (["nope"], "There is no service 'nope'", "Known services: demo."),
        (["demo", "--version", "9.9.9"], "has no version '9.9.9'", "Known versions: 1.0.0, 1.1.0."),
        (["demo", "--plan", "huge"], "has no plan 'huge'", "Known plans: small, large."),
    ],
)
def test_unknown_service_version_or_plan(
    runner: CliRunner,
    fixture_catalog: FixtureCatalog,
    args: list[str],
    problem: str,
    hint: str,
) -> None:
    result = runner.invoke(
        app, ["catalog", "render", *args, "--catalog", str(fixture_catalog.catalog_dir)]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert problem in result.stderr
    assert f"hint: {hint}" in result.stderr


def test_secrets_are_real_derived_values_with_a_warning_offline(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    result = render(runner, fixture_catalog, "-o", "json", "--instance", "web1", "--tenant", "gent")
    assert result.exit_code == 0, result.output
    secret = next(o for o in json.loads(result.stdout) if o["kind"] == "Secret")
    expected = derive_secret(OFFLINE_SECRET, offline_instance_id("gent", "web1"), "session_key")
    assert secret["stringData"]["SESSION_KEY"] == expected
    assert "NOT production credentials" in result.stderr


def test_the_server_secret_from_the_environment_is_used(
    runner: CliRunner, fixture_catalog: FixtureCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROLPLANE_SERVER_SECRET", "s3cret-of-this-site")
    result = render(runner, fixture_catalog, "-o", "json", "--instance", "web1", "--tenant", "gent")
    assert result.exit_code == 0, result.output
    secret = next(o for o in json.loads(result.stdout) if o["kind"] == "Secret")
    expected = derive_secret(
        b"s3cret-of-this-site", offline_instance_id("gent", "web1"), "session_key"
    )
    assert secret["stringData"]["SESSION_KEY"] == expected
    assert "NOT production credentials" not in result.stderr


def test_a_template_error_renders_nothing(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    line = fixture_catalog.replace_in_template(
        "demo/2/20-data.yaml.j2", "{{ plan.storage }}", "{{ plan.disk }}"
    )
    result = render(runner, fixture_catalog)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"templates/demo/2/20-data.yaml.j2:{line}" in result.stderr
    assert "disk" in result.stderr


def test_the_shipped_catalogue_renders_as_json(runner: CliRunner) -> None:
    from controlplane.catalog.loading import load_catalog

    service = sorted(load_catalog().services)[0]
    result = runner.invoke(app, ["catalog", "render", service, "-o", "json"])
    assert result.exit_code == 0, result.output
    objects = json.loads(result.stdout)
    assert objects[0]["kind"] == "Namespace"
    assert all(o["metadata"]["labels"]["city-platform.be/service"] == service for o in objects)
