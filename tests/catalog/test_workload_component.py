"""The shared ``workload`` component (templates/_components/workload.yaml.j2): one Deployment
from typed inputs, used by the Django apps and Signalen (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.validation import check_catalog
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

SHIPPED = Path(__file__).resolve().parents[2] / "templates" / "_components" / "workload.yaml.j2"
DATA = "demo/2/20-data.yaml.j2"
CHECK = stack_check("1.33")
MINIMAL = (
    '{{ component("workload", component="api", image="web", service_account="default",'
    ' pod_security={"runAsUser": 1000}) }}'
)


def _call(fc: FixtureCatalog, call: str) -> None:
    folder = fc.templates_dir / "_components"
    folder.mkdir(exist_ok=True)
    shutil.copy(SHIPPED, folder / "workload.yaml.j2")
    fc.template(DATA).write_text(call + "\n")
    fc.declare_data()  # the call replaces the fixture's volume


def _errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def _deployments(fc: FixtureCatalog, plan: int) -> dict[str, dict[str, Any]]:
    release = load_catalog(fc.catalog_dir, fc.templates_dir).release("demo", "1.1.0")
    objects = [dict(o) for o in CHECK(release, release.plans[plan], {})]
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def test_a_minimal_call_renders_a_valid_deployment(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL)
    assert _errors(fixture_catalog) == []
    api = _deployments(fixture_catalog, 0)["api"]
    pod = api["spec"]["template"]["spec"]
    assert api["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    (container,) = pod["containers"]
    assert container["name"] == "api"
    assert container["image"] == "registry.example.org/demo/web:1.1.0"
    assert "resources" in container  # the plan's, added by the renderer
    assert "env" not in container
    assert "ports" not in container


def test_replicas_default_to_the_plan(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL)
    assert _deployments(fixture_catalog, 0)["api"]["spec"]["replicas"] == 1
    assert _deployments(fixture_catalog, 1)["api"]["spec"]["replicas"] == 2
    _call(fixture_catalog, MINIMAL.replace("pod_security", "replicas=1, pod_security"))
    assert _deployments(fixture_catalog, 1)["api"]["spec"]["replicas"] == 1


def test_list_inputs_land_whole(fixture_catalog: FixtureCatalog) -> None:
    env = '[{"name": "MODE", "value": "a: b\\n---"}]'
    _call(fixture_catalog, MINIMAL.replace("pod_security", f"env={env}, pod_security"))
    assert _errors(fixture_catalog) == []
    (container,) = _deployments(fixture_catalog, 0)["api"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "MODE", "value": "a: b\n---"}]


def test_a_wrong_input_type_is_refused(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL.replace("pod_security", 'env="MODE=a", pod_security'))
    found = _errors(fixture_catalog)
    assert found, "refused"
    assert f"templates/{DATA}:1: component 'workload' refuses these inputs" in found[0]
    assert "env" in found[0]
    assert "array" in found[0]
