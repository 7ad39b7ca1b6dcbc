"""Data declarations (catalogue ``data``): every place a service keeps data is declared, checked
against the renders of every version, and what is backed up is derived from the kind.

The first part breaks the fixture one way at a time and asserts the refusal names the service,
the entry and what to fix; the second checks the shipped catalogue.
"""

from __future__ import annotations

import pytest

from controlplane.catalog.data import BACKED_UP, NOT_BACKED_UP, backup_of, check_data
from controlplane.catalog.loading import load_catalog, read_bundle, template_folder
from controlplane.catalog.models import DataKind, ServiceDefinition
from controlplane.catalog.validation import check_catalog, example_parameters
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

CHECK = stack_check("1.33")
DATA = "demo/2/20-data.yaml.j2"


def errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def test_the_fixture_declares_its_volume(fixture_catalog: FixtureCatalog) -> None:
    assert errors(fixture_catalog) == []


def test_an_undeclared_claim_is_refused(fixture_catalog: FixtureCatalog) -> None:
    text = fixture_catalog.template(DATA).read_text()
    fixture_catalog.template(DATA).write_text(
        text + "---\n" + text.replace("name: data", "name: uploads")
    )
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data: demo 1.1.0 renders PersistentVolumeClaim 'uploads', which "
        "has no entry: add {name: uploads, kind: volume, holds: <what it holds>}"
    ]


def test_a_declared_volume_no_version_renders_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(
        lambda d: d["data"].append({"name": "files", "kind": "volume", "holds": "files"})
    )
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data[1].name: no version of demo renders a PersistentVolumeClaim "
        "'files' (they render: data): fix the name or remove the entry"
    ]


def test_a_missing_postgresql_entry_is_refused(fixture_catalog: FixtureCatalog) -> None:
    # The PostgreSQL component's workload: a StatefulSet named postgres (here a stand-in).
    fixture_catalog.template(DATA).write_text(
        fixture_catalog.template(DATA).read_text() + _STATEFULSET.format(name="postgres")
    )
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data: demo 1.1.0 runs the PostgreSQL component (StatefulSet "
        "'postgres') and has no postgresql entry: add "
        "{name: postgres, kind: postgresql, holds: <what it holds>}"
    ]
    fixture_catalog.edit(
        lambda d: d["data"].append({"name": "postgres", "kind": "postgresql", "holds": "rows"})
    )
    assert errors(fixture_catalog) == []


def test_a_postgresql_entry_without_the_component_is_refused(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.edit(
        lambda d: d["data"].append({"name": "database", "kind": "postgresql", "holds": "rows"})
    )
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data[1].name: a postgresql entry is the PostgreSQL component: "
        "name it 'postgres' (not 'database')",
        "catalog/demo.yaml: data[1]: no version of demo runs the PostgreSQL component "
        "(StatefulSet 'postgres'): remove the entry",
    ]


def test_another_database_is_its_statefulset(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.template(DATA).write_text(
        fixture_catalog.template(DATA).read_text() + _STATEFULSET.format(name="mariadb")
    )
    found = errors(fixture_catalog)
    assert found == [
        "catalog/demo.yaml: data: demo 1.1.0 runs StatefulSet 'mariadb', which has no entry: "
        "add {name: mariadb, kind: <mariadb|redis|rabbitmq|elasticsearch|solr>, "
        "holds: <what it holds>}"
    ]
    fixture_catalog.edit(
        lambda d: d["data"].append({"name": "mariadb", "kind": "mariadb", "holds": "rows"})
    )
    assert errors(fixture_catalog) == []
    fixture_catalog.edit(lambda d: d["data"][1].update(name="maria"))
    assert errors(fixture_catalog)[0] == (
        "catalog/demo.yaml: data[1].name: no version of demo renders a StatefulSet 'maria' "
        "(they render: mariadb): a mariadb entry names the StatefulSet that runs it; fix the "
        "name or remove the entry"
    )


def test_a_database_s_claim_is_not_a_volume(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.template(DATA).write_text(
        fixture_catalog.template(DATA).read_text()
        + _STATEFULSET.format(name="mariadb")
        + _CLAIM.format(name="mariadb-data")
    )
    fixture_catalog.edit(
        lambda d: d["data"].extend(
            [
                {"name": "mariadb", "kind": "mariadb", "holds": "rows"},
                {"name": "mariadb-data", "kind": "volume", "holds": "rows"},
            ]
        )
    )
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data[2]: PersistentVolumeClaim 'mariadb-data' is the data of "
        "StatefulSet 'mariadb', declared as data[1]: remove this entry"
    ]


def test_a_name_declared_twice_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(
        lambda d: d["data"].append({"name": "data", "kind": "volume", "holds": "again"})
    )
    assert "catalog/demo.yaml: data[1].name: 'data' is declared twice (also data[0])" in (
        errors(fixture_catalog)
    )


def test_an_unknown_kind_is_refused_when_loading(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["data"][0].update(kind="mongodb"))
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: data[0].kind: Input should be 'postgresql', 'mariadb', 'redis', "
        "'rabbitmq', 'elasticsearch', 'solr' or 'volume' (got 'mongodb')"
    ]


# -- the shipped catalogue

SHIPPED = load_catalog()


@pytest.mark.parametrize("name", sorted(SHIPPED.services))
def test_every_shipped_service_declares_its_data(name: str) -> None:
    definition: ServiceDefinition = SHIPPED.definition(name)
    assert definition.data, f"{name} declares no data"
    renders = {}
    for version in definition.versions:
        folder = template_folder(SHIPPED.templates_dir, version.templates)
        bundle = read_bundle(folder, components=SHIPPED.templates_dir / "_components")
        release = definition.release(version, bundle)
        renders[version.version] = CHECK(
            release, definition.plans[0], example_parameters(definition.parameters)
        )
    assert list(check_data(definition, renders)) == []


def test_what_is_backed_up_is_derived_from_the_kind() -> None:
    assert backup_of(DataKind.POSTGRESQL) == BACKED_UP
    assert "point-in-time recovery on targets with cloudnative-pg" in BACKED_UP
    assert all(backup_of(k) == NOT_BACKED_UP for k in DataKind if k != DataKind.POSTGRESQL)
    assert NOT_BACKED_UP == "kept on delete until purge; not backed up"


def test_the_declaration_is_not_part_of_the_digest() -> None:
    release = SHIPPED.release("nextcloud", "30.0.2")
    assert release.data
    assert release.model_copy(update={"data": []}).digest == release.digest
    assert release.metadata()["data"] == [p.model_dump(mode="json") for p in release.data]


_STATEFULSET = """
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
  labels:
    app.kubernetes.io/component: web
spec:
  serviceName: {name}
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/component: {name}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: web
          image: {{{{ images.web }}}}
          resources:
            requests: {{cpu: 100m, memory: 64Mi}}
            limits: {{cpu: 100m, memory: 64Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          volumeMounts:
            - {{name: data, mountPath: /var/lib/{name}}}
      volumes:
        - name: data
          persistentVolumeClaim: {{claimName: {name}-data}}
"""

_CLAIM = """
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
  labels:
    app.kubernetes.io/component: web
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""
