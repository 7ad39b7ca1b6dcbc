"""Each kind of mistake gives one clear error naming the file/object and the key or line."""

from __future__ import annotations

import pytest

from controlplane.catalog.models import ServiceRelease
from controlplane.errors import ErrorItem, InvalidInput
from controlplane.rendering import (
    ManifestInvalid,
    ParameterInvalid,
    PolicyViolation,
    Renderer,
    TemplateInvalid,
    derive_secret,
)
from tests.rendering.conftest import INSTANCE, SERVER_SECRET, TENANT, RenderFn, edit, with_files

WEB = "10-web.yaml.j2"
CONFIG = "00-config.yaml.j2"


def only(errors: list[ErrorItem], location_part: str) -> ErrorItem:
    matching = [e for e in errors if location_part in e.location]
    assert len(matching) == 1, errors
    return matching[0]


def test_template_syntax_error_names_file_and_line(render: RenderFn, release: ServiceRelease):
    bad = edit(release, WEB, "  replicas: {{ plan.replicas }}", "  replicas: {{ plan.replicas }")
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    line = bad.bundle.files[WEB].splitlines().index("  replicas: {{ plan.replicas }") + 1
    assert item.location == f"templates/webapp/1/{WEB}:{line}"
    assert "unexpected" in item.message


def test_undefined_variable_names_variable_file_and_line(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "{{ params.site_title }}", "{{ params.site_titel }}")
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    line = next(
        i + 1
        for i, text in enumerate(bad.bundle.files[CONFIG].splitlines())
        if "site_titel" in text
    )
    assert item.location == f"templates/webapp/1/{CONFIG}:{line}"
    assert "site_titel" in item.message
    assert "undefined" in item.message


def test_unknown_top_level_variable(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "{{ params.log_level }}", "{{ loglevel }}")
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    assert "'loglevel' is undefined" in caught.value.errors[0].message


def test_all_template_errors_reported_at_once(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "{{ params.log_level }}", "{{ nope1 }}")
    bad = edit(bad, WEB, "{{ images.web }}", "{{ nope2 }}")
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    messages = " ".join(e.message for e in caught.value.errors)
    assert "nope1" in messages
    assert "nope2" in messages


def test_latest_image_is_refused(render: RenderFn, release: ServiceRelease):
    images = {**release.version.images, "web": "ghcr.io/example/webapp:latest"}
    bad = release.model_copy(
        update={"version": release.version.model_copy(update={"images": images})}
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    item = only(caught.value.errors, "Deployment/web: spec.template.spec.containers[0].image")
    assert "latest" in item.message
    assert "pin" in item.message


def test_untagged_image_is_refused(render: RenderFn, release: ServiceRelease):
    images = {**release.version.images, "web": "ghcr.io/example/webapp"}
    bad = release.model_copy(
        update={"version": release.version.model_copy(update={"images": images})}
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    assert "no tag" in caught.value.errors[0].message


def test_image_not_declared_by_the_version_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(release, WEB, "image: {{ images.web }}", "image: docker.io/evil/miner:1.0")
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    item = only(caught.value.errors, "image")
    assert "not one of the images this version declares" in item.message


def test_container_without_limits_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(
        release,
        "20-worker.yaml.j2",
        "            limits: {cpu: 500m, memory: 512Mi}\n",
        "",
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "Deployment/worker: spec.template.spec.containers[0].resources.limits"
    assert "cpu and memory limits missing" in item.message


def test_run_as_root_is_refused(render: RenderFn, release: ServiceRelease):
    # A missing runAsNonRoot is injected (tests/rendering/test_traits.py); false is refused.
    bad = edit(release, "20-worker.yaml.j2", "runAsNonRoot: true", "runAsNonRoot: false")
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == (
        "templates/webapp/1/20-worker.yaml.j2:21: "
        "Deployment/worker: spec.template.spec.securityContext.runAsNonRoot"
    )
    assert "never run as root" in item.message


def test_host_path_volume_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(
        release,
        WEB,
        "          persistentVolumeClaim: {claimName: media}",
        "          hostPath: {path: /var/run}",
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "Deployment/web: spec.template.spec.volumes[0].hostPath"
    assert "hostPath volumes are not allowed" in item.message


def test_privilege_escalation_host_network_and_token_are_refused(
    render: RenderFn, release: ServiceRelease
):
    bad = edit(
        release,
        "20-worker.yaml.j2",
        "      automountServiceAccountToken: false\n",
        "      hostNetwork: true\n      automountServiceAccountToken: true\n",
    )
    bad = edit(
        bad,
        "20-worker.yaml.j2",
        "allowPrivilegeEscalation: false",
        "privileged: true\n            allowPrivilegeEscalation: true",
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    locations = {e.location.split("Deployment/worker: ")[-1] for e in caught.value.errors}
    assert locations == {
        "spec.template.spec.hostNetwork",
        "spec.template.spec.automountServiceAccountToken",
        "spec.template.spec.containers[0].securityContext.privileged",
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
    }


def test_token_allowed_when_the_pod_declares_it(render: RenderFn, release: ServiceRelease):
    ok = edit(
        release,
        "20-worker.yaml.j2",
        "      automountServiceAccountToken: false\n",
        "      automountServiceAccountToken: true\n",
    )
    ok = edit(
        ok,
        "20-worker.yaml.j2",
        "  template:\n    metadata:\n",
        "  template:\n    metadata:\n      annotations:\n"
        '        city-platform.be/needs-service-account-token: "true"\n',
    )
    stack = render(ok)
    worker = next(o for o in stack.objects if o["metadata"]["name"] == "worker")
    assert worker["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_parameter_violating_pattern_names_parameter_and_rule(render: RenderFn):
    with pytest.raises(ParameterInvalid) as caught:
        render(parameters={"hostname": "Not A Host!"})
    [item] = caught.value.errors
    assert item.location == "parameters.hostname"
    # In words (x-pattern-description, else the description), never the regex.
    assert item.message.startswith(("must be ", "is not in the form this parameter allows"))
    assert "^" not in item.message
    assert "[a-z" not in item.message


def test_parameter_enum_and_nested_rule(render: RenderFn):
    with pytest.raises(ParameterInvalid) as caught:
        render(parameters={"log_level": "loud", "mail": {"port": 0}})
    by_location = {e.location: e.message for e in caught.value.errors}
    assert by_location["parameters.log_level"].startswith("is not one of")
    assert "debug" in by_location["parameters.log_level"]
    assert by_location["parameters.mail.port"] == "must be at least 1"


def test_parameter_of_wrong_type(render: RenderFn):
    with pytest.raises(ParameterInvalid) as caught:
        render(parameters={"site_title": 42})
    [item] = caught.value.errors
    assert item.location == "parameters.site_title"
    assert item.message == "must be of type string"


def test_unknown_parameter_is_refused(render: RenderFn):
    with pytest.raises(ParameterInvalid) as caught:
        render(parameters={"sitetitle": "typo", "mail": {"sendr": "x"}})
    locations = {e.location: e.message for e in caught.value.errors}
    assert set(locations) == {"parameters.sitetitle", "parameters.mail.sendr"}
    assert all(m.startswith("unknown parameter") for m in locations.values())


def test_lone_surrogate_in_parameter_is_refused(render: RenderFn):
    with pytest.raises(ParameterInvalid) as caught:
        render(parameters={"welcome_text": "hallo \ud800"})
    assert caught.value.errors[0].location == "parameters.welcome_text"
    assert "surrogate" in caught.value.errors[0].message


def test_duplicate_yaml_key_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "  LOG_LEVEL:", "  WELCOME: again\n  LOG_LEVEL:")
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location.startswith(f"templates/webapp/1/{CONFIG}")
    assert "duplicate" in item.message
    assert "WELCOME" in item.message


def test_document_that_is_not_an_object_is_refused(render: RenderFn, release: ServiceRelease):
    bad = with_files(release, **{"40-extra.yaml.j2": "- apiVersion: v1\n  kind: ConfigMap\n"})
    with pytest.raises(TemplateInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "templates/webapp/1/40-extra.yaml.j2"
    assert "apiVersion, kind and metadata.name" in item.message


def test_template_setting_a_namespace_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "  name: web\n", "  name: web\n  namespace: kube-system\n")
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "ConfigMap/web: metadata.namespace"
    assert "must not set the namespace" in item.message


def test_cluster_scoped_and_baseline_kinds_are_refused(render: RenderFn, release: ServiceRelease):
    extra = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        "metadata: {name: grab}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole,"
        " name: cluster-admin}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open}\n"
        "spec: {podSelector: {}, ingress: [{}]}\n"
    )
    bad = with_files(release, **{"40-extra.yaml.j2": extra})
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    locations = {e.location for e in caught.value.errors}
    assert locations == {"ClusterRoleBinding/grab: kind", "NetworkPolicy/open: kind"}


def test_schema_invalid_manifest_names_object_and_path(render: RenderFn, release: ServiceRelease):
    bad = edit(release, WEB, "- containerPort: 8080", '- containerPort: "eighty"')
    with pytest.raises(ManifestInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    assert (
        item.location == "Deployment/web: spec.template.spec.containers[0].ports[0].containerPort"
    )
    assert "integer" in item.message


def test_unknown_field_is_refused_by_the_strict_schema(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "type: Opaque", "type: Opaque\nstringDta: {}")
    with pytest.raises(ManifestInvalid) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location.startswith("Secret/db")
    assert "stringDta" in item.message


def test_unknown_kind_is_named(render: RenderFn, release: ServiceRelease):
    extra = "apiVersion: example.org/v1\nkind: Widget\nmetadata: {name: w}\n"
    with pytest.raises(ManifestInvalid) as caught:
        render(with_files(release, **{"40-extra.yaml.j2": extra}))
    [item] = caught.value.errors
    assert item.location == "Widget/w"
    assert "example.org/v1/Widget" in item.message


def test_secret_leaking_into_a_config_map_is_refused(render: RenderFn, release: ServiceRelease):
    bad = edit(release, CONFIG, "{{ params.welcome_text }}", "{{ secrets.db_password }}")
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == "ConfigMap/web: data.WELCOME"
    assert "only appear in the stringData of a Secret" in item.message
    # The error never shows the credential itself.
    assert derive_secret(SERVER_SECRET, INSTANCE.id, "db_password") not in str(caught.value)


def test_unknown_plan(render: RenderFn):
    with pytest.raises(InvalidInput) as caught:
        render(plan="huge")
    assert caught.value.errors[0].location == "plan"


def test_nothing_is_returned_half(renderer: Renderer, release: ServiceRelease):
    bad = edit(release, WEB, "- containerPort: 8080", '- containerPort: "eighty"')
    bad = edit(bad, "20-worker.yaml.j2", "runAsNonRoot: true", "runAsNonRoot: false")
    with pytest.raises(ManifestInvalid) as caught:
        renderer.render(bad, plan="small", tenant=TENANT, instance=INSTANCE, parameters={})
    # Schema and policy problems of the same render come together.
    assert any("containerPort" in e.location for e in caught.value.errors)
    assert any("runAsNonRoot" in e.location for e in caught.value.errors)
