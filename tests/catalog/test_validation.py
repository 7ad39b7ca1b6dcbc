"""Static rules of catalogue validation: one broken copy of the fixture per kind of mistake.

Every test asserts the location (file and key path) and the words of the message, and
that the mistake is the only error, so that a rule firing at the wrong place fails.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from controlplane.catalog.file_schema import render_file_schema
from controlplane.catalog.validation import check_catalog, example_parameters, validate_catalog
from controlplane.errors import ErrorItem
from tests.catalog.fixture_catalog import FixtureCatalog

FILE = "catalog/demo.yaml"


def errors_of(fc: FixtureCatalog) -> list[ErrorItem]:
    return validate_catalog(fc.catalog_dir, fc.templates_dir)


def only_error(fc: FixtureCatalog) -> ErrorItem:
    errors = errors_of(fc)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_the_fixture_is_clean(fixture_catalog: FixtureCatalog) -> None:
    report = check_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir)
    assert report.errors == []
    assert (report.services, report.versions, report.stacks) == (1, 2, 0)


def test_wrong_type_names_file_and_key_path(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["plans"][1]["cpu"].update(limit=2))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: plans[1].cpu.limit"
    assert "valid string" in error.message
    assert "got 2" in error.message


def test_unknown_key_lists_the_allowed_keys(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][0].update(imagez={"web": "x:1"}))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[0].imagez"
    assert "unknown key 'imagez'" in error.message
    assert "images" in error.message.split("allowed here:")[1]


def test_missing_key(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d.pop("owner"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: owner"
    assert "required key is missing" in error.message


def test_missing_template_folder(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1].update(templates="demo/9"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[1].templates"
    assert "demo/9" in error.message
    assert "does not exist" in error.message


def test_template_folder_without_templates(fixture_catalog: FixtureCatalog) -> None:
    (fixture_catalog.templates_dir / "demo" / "3").mkdir()
    fixture_catalog.edit(lambda d: d["versions"][1].update(templates="demo/3"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[1].templates"
    assert "has no *.yaml.j2 files" in error.message


def test_template_folder_outside_the_templates_folder(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1].update(templates="demo/../../catalog"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[1].templates"
    assert "inside the templates folder" in error.message


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("registry.example.org/demo/web:latest", "moving tag 'latest'"),
        ("registry.example.org/demo/web", "has no tag"),
        ("registry.example.org:5000/demo/web", "has no tag"),
    ],
)
def test_image_must_be_pinned(fixture_catalog: FixtureCatalog, image: str, words: str) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1]["images"].update(web=image))
    errors = errors_of(fixture_catalog)
    # The pinning error, and the facts sheet's (it lists no such tag): both on the image.
    assert {e.location for e in errors} == {f"{FILE}: versions[1].images.web"}
    assert any(words in e.message for e in errors), errors


def test_image_pinned_by_digest_or_on_a_registry_port_is_fine(
    fixture_catalog: FixtureCatalog,
) -> None:
    digest = "sha256:" + "a" * 64

    def change(d: dict[str, Any]) -> None:
        d["versions"][0]["images"]["web"] = "registry.example.org:5000/demo/web:1.0.0"
        d["versions"][1]["images"]["web"] = "demo/web@" + digest
        # The facts sheet lists an image pinned by digest under its digest.
        facts = d["facts"].pop("registry.example.org/demo/web")
        d["facts"]["registry.example.org:5000/demo/web"] = facts
        d["facts"]["demo/web"] = {**facts, "tags": {digest: facts["tags"]["1.1.0"]}}

    fixture_catalog.edit(change)
    assert errors_of(fixture_catalog) == []


def test_invalid_semver(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][0].update(version="1.0"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[0].version"
    assert "'1.0' is not a semantic version" in error.message


def test_upgrade_range_matching_no_version(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1].update(upgrade_from=">=5.0.0,<6.0.0"))
    errors = errors_of(fixture_catalog)
    by_location = {e.location: e.message for e in errors}
    message = by_location[f"{FILE}: versions[1].upgrade_from"]
    assert "matches no other declared version of demo" in message
    assert "1.0.0" in message
    # 1.0.0 is deprecated and now has no way forward: that is reported as well.
    assert (
        "no newer, non-retired version upgrades from it"
        in by_location[f"{FILE}: versions[0].status"]
    )
    assert len(errors) == 2


def test_malformed_upgrade_range(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1].update(upgrade_from=">=1.0.0,~>1.1"))
    errors = errors_of(fixture_catalog)
    by_location = {e.location: e.message for e in errors}
    message = by_location[f"{FILE}: versions[1].upgrade_from"]
    assert "'~>1.1'" in message
    assert "is not a comparator" in message


def test_upgrade_range_must_not_match_the_version_itself_or_newer(
    fixture_catalog: FixtureCatalog,
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["versions"][0]["upgrade_from"] = ">=1.0.0"

    fixture_catalog.edit(change)
    errors = [e for e in errors_of(fixture_catalog) if e.location.endswith("[0].upgrade_from")]
    messages = " | ".join(e.message for e in errors)
    assert "matches 1.0.0 itself" in messages
    assert "matches 1.1.0, not older than 1.0.0" in messages


def test_duplicate_versions_and_plans(fixture_catalog: FixtureCatalog) -> None:
    def change(d: dict[str, Any]) -> None:
        d["versions"][1]["version"] = "1.0.0"
        d["versions"][1]["upgrade_from"] = ""
        d["plans"][1]["name"] = "small"

    fixture_catalog.edit(change)
    by_location = {e.location: e.message for e in errors_of(fixture_catalog)}
    assert "declared twice (also versions[0])" in by_location[f"{FILE}: versions[1].version"]
    assert "declared twice (also plans[0])" in by_location[f"{FILE}: plans[1].name"]


def test_file_name_must_equal_the_service_name(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d.update(name="other"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: name"
    assert "'other' must equal the file name 'demo'" in error.message


def test_request_above_limit(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["plans"][0]["memory"].update(request="1Gi", limit="512Mi"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: plans[0].memory.request"
    assert "request 1Gi is more than the limit 512Mi" in error.message


def test_deprecated_version_needs_a_support_end(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][0].pop("support_ends"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: versions[0].support_ends"
    assert "a deprecated version needs support_ends" in error.message


def test_parameters_must_be_valid_json_schema(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["parameters"]["properties"]["workers"].update(type="int"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.properties.workers.type"
    assert "not valid JSON Schema" in error.message


def test_parameters_must_be_an_object_schema(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["parameters"].update(type="array"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.type"


def test_parameter_defaults_must_validate(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["parameters"]["properties"]["workers"].update(default=99))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.properties.workers.default"
    assert "99 is greater than the maximum of 8" in error.message


def test_nested_parameter_defaults_are_checked(fixture_catalog: FixtureCatalog) -> None:
    def change(d: dict[str, Any]) -> None:
        d["parameters"]["properties"]["smtp"]["properties"]["port"]["default"] = 0

    fixture_catalog.edit(change)
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.properties.smtp.properties.port.default"


def test_required_parameter_needs_a_default_or_an_example(
    fixture_catalog: FixtureCatalog,
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["parameters"]["properties"]["hostname"] = {"type": "string"}
        d["parameters"]["required"] = ["hostname"]

    fixture_catalog.edit(change)
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.properties.hostname"
    assert "needs `examples`" in error.message

    def with_example(d: dict[str, Any]) -> None:
        d["parameters"]["properties"]["hostname"]["examples"] = ["e-loket.gent.be"]

    fixture_catalog.edit(with_example)
    assert errors_of(fixture_catalog) == []
    schema = fixture_catalog.service()["parameters"]
    assert example_parameters(schema)["hostname"] == "e-loket.gent.be"


def test_parameter_schema_of_another_draft(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(
        lambda d: d["parameters"].update({"$schema": "http://json-schema.org/draft-07/schema#"})
    )
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters.$schema"


def test_mixed_shared_cost_needs_equal_percent(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["shared_cost"].pop("equal_percent"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: shared_cost.equal_percent"
    assert "mixed key needs equal_percent" in error.message


def test_equal_percent_only_with_the_mixed_key(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["shared_cost"].update(key="equal"))
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: shared_cost.equal_percent"


def test_yaml_syntax_error_names_the_line(fixture_catalog: FixtureCatalog) -> None:
    (fixture_catalog.catalog_dir / "demo.yaml").write_text("name: demo\nversions: [\n")
    error = only_error(fixture_catalog)
    assert error.location.startswith(f"{FILE}:2:")
    assert "unclosed" in error.message


def test_duplicate_yaml_keys_are_refused(fixture_catalog: FixtureCatalog) -> None:
    path = fixture_catalog.catalog_dir / "demo.yaml"
    path.write_text(path.read_text() + "owner: someone-else\n")
    error = only_error(fixture_catalog)
    assert error.location == FILE
    assert "duplicate" in error.message


def test_every_file_is_checked_not_only_the_first_broken_one(
    fixture_catalog: FixtureCatalog,
) -> None:
    second = fixture_catalog.service()
    second["name"] = "zeta"
    second["plans"][0]["replicas"] = "many"
    fixture_catalog.write("zeta", second)
    fixture_catalog.edit(lambda d: d["versions"][1]["images"].update(web="web:latest"))
    locations = {e.location for e in errors_of(fixture_catalog)}
    assert locations == {
        f"{FILE}: versions[1].images.web",
        "catalog/zeta.yaml: plans[0].replicas",
    }


def test_the_file_schema_beside_the_services_is_not_read_as_a_service(
    fixture_catalog: FixtureCatalog,
) -> None:
    (fixture_catalog.catalog_dir / "catalog.schema.json").write_text(render_file_schema())
    report = check_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir)
    assert report.errors == []
    assert report.services == 1


def test_an_empty_catalogue_is_an_error(fixture_catalog: FixtureCatalog) -> None:
    shutil.rmtree(fixture_catalog.catalog_dir)
    fixture_catalog.catalog_dir.mkdir()
    errors = errors_of(fixture_catalog)
    assert [e.message for e in errors] == ["the catalogue has no service files (*.yaml)"]


def test_a_missing_catalogue_folder_is_an_error(fixture_catalog: FixtureCatalog) -> None:
    errors = validate_catalog(fixture_catalog.root / "nope", fixture_catalog.templates_dir)
    assert [e.message for e in errors] == ["no such folder"]


def test_a_remote_reference_in_the_parameters_is_refused_offline(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.edit(
        lambda d: d["parameters"]["properties"].update(
            extra={"$ref": "https://example.com/extra.schema.json"}
        )
    )
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}: parameters"
    assert "https://example.com/extra.schema.json" in error.message


# -- YAML 1.1/1.2 traps in catalogue files and templates ----------------------------------

WEB = "demo/2/10-web.yaml.j2"


def replace_in_file(fc: FixtureCatalog, old: str, new: str) -> tuple[int, int]:
    """Replace the first ``old`` in catalog/demo.yaml; its 1-based line and column."""
    path = fc.catalog_dir / "demo.yaml"
    text = path.read_text()
    assert old in text, old
    before = text[: text.index(old)]
    path.write_text(text.replace(old, new, 1))
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def test_leading_zero_in_a_template_names_file_line_and_key(
    fixture_catalog: FixtureCatalog,
) -> None:
    line = fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", "replicas: 01")
    error = only_error(fixture_catalog)
    assert error.location == f"templates/{WEB}:{line}:13: Deployment/web: spec.replicas"
    assert "01 has a leading zero" in error.message
    assert "Write 1" in error.message


def test_octal_mode_in_a_template_says_what_to_write(fixture_catalog: FixtureCatalog) -> None:
    volume = "          secret: {secretName: web, defaultMode: 0440}\n"
    line = fixture_catalog.replace_in_template(
        WEB,
        "      containers:\n",
        "      volumes:\n        - name: s\n" + volume + "      containers:\n",
    )
    error = only_error(fixture_catalog)
    column = volume.index("0440") + 1
    assert error.location == (
        f"templates/{WEB}:{line + 2}:{column}: "
        "Deployment/web: spec.template.spec.volumes[0].secret.defaultMode"
    )
    assert "YAML 1.1 reads octal 0440 = 288" in error.message
    assert "288 # 0440" in error.message


def test_yaml_11_boolean_in_a_catalogue_file(fixture_catalog: FixtureCatalog) -> None:
    line, column = replace_in_file(fixture_catalog, "title: Demo", "title: yes")
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}:{line}:{column + 7}: title"
    assert 'the boolean true in YAML 1.1. Quote it ("yes")' in error.message


def test_sexagesimal_in_a_catalogue_file_names_the_key_path(
    fixture_catalog: FixtureCatalog,
) -> None:
    line, column = replace_in_file(fixture_catalog, 'app_version: "1.1"', "app_version: 1:30")
    error = only_error(fixture_catalog)
    assert error.location == f"{FILE}:{line}:{column + 13}: versions[1].app_version"
    assert "the base-60 number 90 in YAML 1.1" in error.message


def test_quoted_values_are_fine(fixture_catalog: FixtureCatalog) -> None:
    replace_in_file(fixture_catalog, "title: Demo", 'title: "yes"')
    fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", 'replicas: "01"')
    assert [e for e in errors_of(fixture_catalog) if "leading zero" in e.message] == []
    assert not any(e.location.startswith(FILE) for e in errors_of(fixture_catalog))


def test_a_file_that_does_not_load_still_has_its_traps_reported(
    fixture_catalog: FixtureCatalog,
) -> None:
    replace_in_file(fixture_catalog, "replicas: 1\n", "replicas: many\n")
    line, _ = replace_in_file(fixture_catalog, "title: Demo", "title: on")
    locations = [e.location for e in errors_of(fixture_catalog)]
    assert locations == [f"{FILE}: plans[0].replicas", f"{FILE}:{line}:8: title"]


def test_a_template_folder_of_two_versions_is_reported_once(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.replace_in_template(WEB, "replicas: {{ plan.replicas }}", "replicas: 01")
    fixture_catalog.edit(lambda d: d["versions"][0].update(templates="demo/2"))
    errors = [e for e in errors_of(fixture_catalog) if "leading zero" in e.message]
    assert len(errors) == 1, [str(e) for e in errors]
