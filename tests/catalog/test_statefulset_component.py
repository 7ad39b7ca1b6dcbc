"""The shared ``statefulset`` component (templates/_components/statefulset.yaml.j2): a data
service of one replica with its ServiceAccount, data claim and Service, used by the postgres
component, MariaDB, Solr, Elasticsearch and RabbitMQ (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.validation import check_catalog
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

SHIPPED = Path(__file__).resolve().parents[2] / "templates" / "_components" / "statefulset.yaml.j2"
DATA = "demo/2/20-data.yaml.j2"
CHECK = stack_check("1.33")
MINIMAL = (
    '{{ component("statefulset", component="store", image="web", uid=999,'
    ' ports={"db": 5432}, data_path="/var/lib/store") }}'
)


def _call(fc: FixtureCatalog, call: str) -> None:
    folder = fc.templates_dir / "_components"
    folder.mkdir(exist_ok=True)
    shutil.copy(SHIPPED, folder / "statefulset.yaml.j2")
    fc.template(DATA).write_text(call + "\n")
    fc.declare_data(("store", "mariadb"))  # the data service replaces the fixture's volume


def _errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def _objects(fc: FixtureCatalog, plan: int = 0) -> dict[tuple[str, str], dict[str, Any]]:
    release = load_catalog(fc.catalog_dir, fc.templates_dir).release("demo", "1.1.0")
    objects = [dict(o) for o in CHECK(release, release.plans[plan], {})]
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_a_minimal_call_renders_a_data_service(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL)
    assert _errors(fixture_catalog) == []
    made = _objects(fixture_catalog)
    assert ("ServiceAccount", "store") in made
    claim = made["PersistentVolumeClaim", "store-data"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}  # the plan's
    sts = made["StatefulSet", "store"]
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "store"
    pod = sts["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "store"
    assert pod["automountServiceAccountToken"] is False  # added by the renderer
    security = pod["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (999, 999, 999)
    assert security["runAsNonRoot"] is True  # added by the renderer
    (container,) = pod["containers"]
    assert container["name"] == "store"
    assert container["image"] == "registry.example.org/demo/web:1.1.0"
    assert container["ports"] == [{"name": "db", "containerPort": 5432, "protocol": "TCP"}]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/store"}]
    assert "resources" in container  # the plan's, added by the renderer
    assert pod["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "store-data"}}
    ]
    service = made["Service", "store"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "db", "port": 5432, "targetPort": "db", "protocol": "TCP"}
    ]


def test_storage_and_container_fields_land_as_given(fixture_catalog: FixtureCatalog) -> None:
    call = MINIMAL.replace(
        "uid=999,",
        'uid=999, storage="3Gi", volumes=[{"name": "run", "emptyDir": {}}],'
        ' container={"env": [{"name": "MODE", "value": "a: b\\n---"}],'
        ' "volumeMounts": [{"name": "run", "mountPath": "/run"}]},',
    )
    _call(fixture_catalog, call)
    assert _errors(fixture_catalog) == []
    made = _objects(fixture_catalog, plan=1)
    claim = made["PersistentVolumeClaim", "store-data"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "3Gi"}}
    pod = made["StatefulSet", "store"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["env"] == [{"name": "MODE", "value": "a: b\n---"}]
    assert [m["name"] for m in container["volumeMounts"]] == ["data", "run"]
    assert [v["name"] for v in pod["volumes"]] == ["run", "data"]


def test_a_container_field_the_component_owns_is_refused(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL.replace("uid=999,", 'uid=999, container={"image": "evil"},'))
    found = _errors(fixture_catalog)
    assert found, "refused"
    assert f"templates/{DATA}:1: component 'statefulset' refuses these inputs" in found[0]
    assert "container" in found[0]


def test_a_call_without_ports_is_refused(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, MINIMAL.replace(' ports={"db": 5432},', ""))
    found = _errors(fixture_catalog)
    assert found, "refused"
    assert "component 'statefulset' refuses these inputs" in found[0]
    assert "ports" in found[0]
