"""`controlplane catalog validate`: every error with file and key path, exit 1 on any.

The template-level mistakes (syntax, undefined variable, missing limits, `:latest`,
Kubernetes schema) are found by rendering every version x plan through the real renderer.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from controlplane.catalog.loading import load_catalog
from controlplane.commands import app
from tests.catalog.fixture_catalog import FixtureCatalog

FILE = "catalog/demo.yaml"
WEB = "demo/2/10-web.yaml.j2"


def run_validate(runner: CliRunner, fc: FixtureCatalog) -> tuple[int, list[str]]:
    result = runner.invoke(
        app, ["catalog", "validate", str(fc.catalog_dir), "--templates", str(fc.templates_dir)]
    )
    return result.exit_code, [line for line in result.stdout.splitlines() if line]


def test_the_shipped_catalogue_validates_clean(runner: CliRunner) -> None:
    result = runner.invoke(app, ["catalog", "validate"])
    assert result.exit_code == 0, result.output
    catalog = load_catalog()
    services = len(catalog.services)
    versions = sum(len(s.versions) for s in catalog.services.values())
    stacks = sum(len(s.versions) * len(s.plans) for s in catalog.services.values())
    assert f"{services} services, {versions} versions, {stacks} stacks rendered and checked" in (
        result.stdout
    )


def test_the_fixture_validates_clean(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 0, lines
    assert lines == [
        "1 service, 2 versions, 4 stacks rendered and checked, 2 plan changes and 2 upgrades "
        "compared (Kubernetes 1.33)."
    ]


def test_templates_beside_the_catalogue_folder_are_found(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    result = runner.invoke(app, ["catalog", "validate", str(fixture_catalog.catalog_dir)])
    assert result.exit_code == 0, result.output


def test_static_errors_are_listed_one_per_line(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    def change(d: dict[str, object]) -> None:
        d["plans"][1]["cpu"]["limit"] = 2  # type: ignore[index]
        d["versions"][1]["images"]["web"] = "registry.example.org/demo/web:latest"  # type: ignore[index]
        d["versions"][1]["upgrade_from"] = ">=7.0.0"  # type: ignore[index]

    fixture_catalog.edit(change)
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    # The broken file does not parse, so only its type error is reported for it.
    assert lines == [f"{FILE}: plans[1].cpu.limit: Input should be a valid string (got 2)"]

    fixture_catalog.edit(lambda d: d["plans"][1]["cpu"].update(limit="1"))
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert any(line.startswith(f"{FILE}: versions[1].images.web: ") for line in lines)
    assert any(
        line.startswith(f"{FILE}: versions[1].upgrade_from: ") and "matches no other" in line
        for line in lines
    )


def test_template_syntax_error_names_file_and_line(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    line = fixture_catalog.replace_in_template(
        WEB, "replicas: {{ plan.replicas }}", "replicas: {{ plan.replicas "
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    # Reported once for the version, not once per plan.
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{FILE}: versions[1] 1.1.0, plan small: templates/{WEB}:")
    reported = int(re.search(rf"{re.escape(WEB)}:(\d+)", lines[0]).group(1))  # type: ignore[union-attr]
    assert reported in (line, line + 1)  # Jinja reports the unclosed tag where it notices it
    assert "expected token 'end of print statement'" in lines[0]


def test_undefined_variable_is_named_with_its_line(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    line = fixture_catalog.replace_in_template(
        WEB, "value: {{ params.greeting }}", "value: {{ params.greting }}"
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert len(lines) == 1, lines
    assert f"templates/{WEB}:{line}" in lines[0]
    assert "greting" in lines[0]


def test_container_without_limits(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.replace_in_template(
        WEB,
        "            limits:\n"
        "              cpu: {{ plan.cpu.limit }}\n"
        "              memory: {{ plan.memory.limit }}\n",
        "",
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert lines, "a container without limits must be reported"
    assert all(line.startswith(f"{FILE}: versions[1] 1.1.0, plan ") for line in lines)
    assert any("Deployment/web" in line and "limits" in line for line in lines), lines


def test_image_on_latest_in_a_template(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.replace_in_template(
        WEB, "image: {{ images.web }}", "image: registry.example.org/demo/web:latest"
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert any("Deployment/web" in line and "latest" in line for line in lines), lines


def test_image_on_latest_in_the_catalogue_file(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    fixture_catalog.edit(
        lambda d: d["versions"][1]["images"].update(web="registry.example.org/demo/web:latest")
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert f"{FILE}: versions[1].images.web: " in lines[0]
    assert "latest" in lines[0]


def test_kubernetes_schema_violation(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.replace_in_template(WEB, "containerPort: 8080", "containerPort: http")
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert any("Deployment/web" in line and "containerPort" in line for line in lines), lines


def test_errors_in_two_versions_are_both_reported(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    fixture_catalog.replace_in_template(
        "demo/1/10-web.yaml.j2", "{{ params.greeting }}", "{{ params.one }}"
    )
    fixture_catalog.replace_in_template(WEB, "{{ params.greeting }}", "{{ params.two }}")
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert any("versions[0] 1.0.0" in line and "one" in line for line in lines)
    assert any("versions[1] 1.1.0" in line and "two" in line for line in lines)


def test_unknown_kubernetes_version(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    result = runner.invoke(
        app,
        ["catalog", "validate", str(fixture_catalog.catalog_dir), "--kubernetes-version", "0.1"],
    )
    assert result.exit_code == 1
    assert "0.1" in result.stderr


@pytest.mark.parametrize("flag", ["--check", "--write"])
def test_schema_command(runner: CliRunner, fixture_catalog: FixtureCatalog, flag: str) -> None:
    target = fixture_catalog.catalog_dir / "catalog.schema.json"
    first = runner.invoke(app, ["catalog", "schema", str(fixture_catalog.catalog_dir), "--check"])
    assert first.exit_code == 1
    assert "out of date" in first.stderr
    runner.invoke(app, ["catalog", "schema", str(fixture_catalog.catalog_dir), "--write"])
    assert target.is_file()
    again = runner.invoke(app, ["catalog", "schema", str(fixture_catalog.catalog_dir), flag])
    assert again.exit_code == 0


def test_yaml_trap_in_a_template_names_file_line_and_key(
    runner: CliRunner, fixture_catalog: FixtureCatalog
) -> None:
    line = fixture_catalog.replace_in_template(
        WEB, "replicas: {{ plan.replicas }}", "replicas: 010"
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"templates/{WEB}:{line}:13: Deployment/web: spec.replicas: 010 has a leading zero: "
        "YAML 1.2 (the renderer) reads decimal 10, YAML 1.1 reads octal 010 = 8."
    )


def test_refused_plan_change_is_listed(runner: CliRunner, fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.replace_in_template(
        "demo/2/20-data.yaml.j2",
        "  accessModes: [ReadWriteOnce]\n",
        "  accessModes: [{{ 'ReadWriteOnce' if plan.name == 'small' else 'ReadWriteMany' }}]\n",
    )
    code, lines = run_validate(runner, fixture_catalog)
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"{FILE}: versions[1] 1.1.0, plan changes: PersistentVolumeClaim/data: spec.accessModes: "
        'differs between plans (small → large: spec.accessModes[0]: "ReadWriteOnce" → '
        '"ReadWriteMany"), but the apiserver refuses to change it on update'
    )
