"""The immutable-field table: what an update from one render to another may not change.

Each case builds an object, changes one field and asserts whether (and where) the change
is refused, so that a row that is missing, too broad or on the wrong path fails.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from controlplane.catalog.transitions import RefusedChange
from controlplane.rendering.immutability import IMMUTABLE_FIELDS, Rule, refused_changes

Obj = dict[str, Any]


def statefulset() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "postgres", "labels": {"city-platform.be/plan": "small"}},
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/component": "postgres"}},
            "template": {"spec": {"containers": [{"name": "db", "image": "postgres:16.6"}]}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "5Gi"}},
                    },
                }
            ],
        },
    }


def deployment() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/component": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        },
    }


def claim() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }


def service() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]},
    }


def secret() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "web"},
        "stringData": {"KEY": "one"},
    }


def configmap() -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}


def job() -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "app:1"}]}}},
    }


def refused(
    make: Callable[[], Obj],
    change: Callable[[Obj], object],
    *,
    plan_change: bool = False,
    old_change: Callable[[Obj], object] | None = None,
) -> list[RefusedChange]:
    old, new = make(), make()
    if old_change is not None:
        old_change(old)
    change(new)
    return refused_changes([old], [new], plan_change=plan_change)


def fields(changes: list[RefusedChange]) -> list[str]:
    return [f"{c.object}: {c.field}" for c in changes]


# -- StatefulSet: only replicas, template, updateStrategy, … may change ---------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o["spec"].update(serviceName="db"), "spec.serviceName"),
        (lambda o: o["spec"].update(podManagementPolicy="Parallel"), "spec.podManagementPolicy"),
        (
            lambda o: o["spec"]["selector"]["matchLabels"].update(tier="db"),
            "spec.selector",
        ),
        (
            lambda o: o["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"].update(
                storage="20Gi"
            ),
            "spec.volumeClaimTemplates",
        ),
        (
            lambda o: o["spec"]["volumeClaimTemplates"][0]["metadata"].update(
                labels={"city-platform.be/plan": "large"}
            ),
            "spec.volumeClaimTemplates",
        ),
    ],
)
def test_statefulset_fields_outside_the_mutable_list_are_refused(
    change: Callable[[Obj], object], field: str
) -> None:
    changes = refused(statefulset, change)
    assert fields(changes) == [f"StatefulSet/postgres: {field}"]
    assert "updates to statefulset spec for fields other than" in changes[0].reason


def test_a_refused_change_shows_the_leaf_that_differs() -> None:
    (change,) = refused(
        statefulset,
        lambda o: o["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"].update(
            storage="20Gi"
        ),
    )
    assert change.change == (
        'spec.volumeClaimTemplates[0].spec.resources.requests.storage: "5Gi" → "20Gi"'
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["spec"].update(replicas=3),
        lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="postgres:17.2"),
        lambda o: o["spec"].update(updateStrategy={"type": "OnDelete"}),
        lambda o: o["spec"].update(minReadySeconds=10),
        lambda o: o["spec"].update(revisionHistoryLimit=3),
        lambda o: o["spec"].update(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain"}),
        lambda o: o["metadata"]["labels"].update({"city-platform.be/plan": "large"}),
        # The apiserver's default written out is no change.
        lambda o: o["spec"].update(podManagementPolicy="OrderedReady"),
    ],
)
def test_statefulset_mutable_fields_may_change(change: Callable[[Obj], object]) -> None:
    assert refused(statefulset, change) == []


# -- Deployment, Job ------------------------------------------------------------------------


def test_deployment_selector_is_refused_and_its_template_is_not() -> None:
    changes = refused(deployment, lambda o: o["spec"]["selector"]["matchLabels"].update(v="2"))
    assert fields(changes) == ["Deployment/web: spec.selector"]
    assert "field is immutable" in changes[0].reason
    assert "app.kubernetes.io/component" in changes[0].reason  # the fix
    assert refused(deployment, lambda o: o["spec"]["template"].update(metadata={"x": 1})) == []
    assert refused(deployment, lambda o: o["spec"].update(replicas=4)) == []


def test_job_template_is_refused() -> None:
    changes = refused(
        job, lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="app:2")
    )
    assert fields(changes) == ["Job/migrate: spec.template"]
    assert 'containers[0].image: "app:1" → "app:2"' in changes[0].change


def test_job_completions_may_change_only_when_indexed() -> None:
    assert fields(refused(job, lambda o: o["spec"].update(completions=2))) == [
        "Job/migrate: spec.completions"
    ]
    indexed = refused(
        job,
        lambda o: o["spec"].update(completions=2, completionMode="Indexed"),
        old_change=lambda o: o["spec"].update(completionMode="Indexed"),
    )
    assert indexed == []


def test_cronjob_and_pod_disruption_budget_are_mutable() -> None:
    def cronjob() -> Obj:
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "cron"},
            "spec": {"schedule": "0 2 * * *", "jobTemplate": job()["spec"]},
        }

    def pdb() -> Obj:
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}},
        }

    assert refused(cronjob, lambda o: o["spec"]["jobTemplate"].update(parallelism=2)) == []
    assert refused(pdb, lambda o: o["spec"].update(selector={"matchLabels": {"c": "d"}})) == []


# -- PersistentVolumeClaim --------------------------------------------------------------------


def grow(size: str) -> Callable[[Obj], object]:
    return lambda o: o["spec"]["resources"]["requests"].update(storage=size)


def test_claim_storage_may_grow_but_not_shrink_on_upgrade() -> None:
    assert refused(claim, grow("20Gi")) == []
    assert refused(claim, grow("5120Mi")) == []  # the same amount
    changes = refused(claim, grow("1Gi"))
    assert fields(changes) == ["PersistentVolumeClaim/data: spec.resources.requests.storage"]
    assert changes[0].change == 'spec.resources.requests.storage: "5Gi" → "1Gi"'
    assert "field can not be less than previous value" in changes[0].reason


def test_claim_storage_shrinking_on_a_plan_change_is_the_platforms_business() -> None:
    # The renderer raises plan.storage to the instance's storage floor on a plan change.
    assert refused(claim, grow("1Gi"), plan_change=True) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o["spec"].update(accessModes=["ReadWriteMany"]), "spec.accessModes"),
        (lambda o: o["spec"].update(volumeMode="Block"), "spec.volumeMode"),
        (
            lambda o: o["spec"].update(dataSource={"kind": "PersistentVolumeClaim", "name": "x"}),
            "spec.dataSource",
        ),
        (
            lambda o: o["spec"]["resources"].update(limits={"storage": "9Gi"}),
            "spec.resources",
        ),
    ],
)
def test_claim_spec_is_frozen_but_for_its_requests(
    change: Callable[[Obj], object], field: str
) -> None:
    changes = refused(claim, change)
    assert fields(changes) == [f"PersistentVolumeClaim/data: {field}"]
    assert "spec is immutable after creation" in changes[0].reason


def test_claim_storage_class_may_be_set_once() -> None:
    set_class = lambda o: o["spec"].update(storageClassName="fast")  # noqa: E731
    assert refused(claim, set_class) == []
    assert fields(refused(claim, lambda o: None, old_change=set_class)) == [
        "PersistentVolumeClaim/data: spec.storageClassName"
    ]
    assert fields(
        refused(claim, lambda o: o["spec"].update(storageClassName="slow"), old_change=set_class)
    ) == ["PersistentVolumeClaim/data: spec.storageClassName"]
    assert refused(claim, lambda o: o["spec"].update(volumeMode="Filesystem")) == []


# -- Service, Secret, ConfigMap, RBAC -----------------------------------------------------------


def test_service_cannot_switch_between_headless_and_a_cluster_ip() -> None:
    headless = lambda o: o["spec"].update(clusterIP="None")  # noqa: E731
    assert fields(refused(service, headless)) == ["Service/web: spec.clusterIP"]
    assert fields(refused(service, lambda o: None, old_change=headless)) == [
        "Service/web: spec.clusterIP"
    ]
    assert refused(service, headless, old_change=headless) == []
    external = lambda o: o["spec"].update(type="ExternalName", externalName="x.example")  # noqa: E731
    assert refused(service, external, old_change=headless) == []
    assert refused(service, lambda o: o["spec"].update(ports=[{"port": 8080}])) == []


def test_service_primary_ip_family_is_fixed_once_set() -> None:
    v4 = lambda o: o["spec"].update(ipFamilies=["IPv4"])  # noqa: E731
    assert refused(service, v4) == []  # absent: the cluster's default
    assert (
        refused(service, lambda o: o["spec"].update(ipFamilies=["IPv4", "IPv6"]), old_change=v4)
        == []
    )
    assert fields(
        refused(service, lambda o: o["spec"].update(ipFamilies=["IPv6"]), old_change=v4)
    ) == ["Service/web: spec.ipFamilies[0]"]


def test_secret_type_is_fixed_and_absent_means_opaque() -> None:
    assert refused(secret, lambda o: o.update(type="Opaque")) == []
    changes = refused(secret, lambda o: o.update(type="kubernetes.io/tls"))
    assert fields(changes) == ["Secret/web: type"]
    assert changes[0].change == 'type: "Opaque" → "kubernetes.io/tls"'


def test_immutable_secret_and_configmap_data_are_fixed() -> None:
    frozen = lambda o: o.update(immutable=True)  # noqa: E731
    assert refused(secret, lambda o: o["stringData"].update(KEY="two")) == []
    both = lambda o: (o.update(immutable=True), o["stringData"].update(KEY="two"))  # noqa: E731
    assert fields(refused(secret, both, old_change=frozen)) == ["Secret/web: stringData"]
    assert fields(refused(secret, lambda o: None, old_change=frozen)) == ["Secret/web: immutable"]
    assert refused(secret, frozen) == []  # making it immutable is allowed
    changed = lambda o: (o.update(immutable=True), o["data"].update(a="2"))  # noqa: E731
    assert fields(refused(configmap, changed, old_change=frozen)) == ["ConfigMap/c: data"]
    assert refused(configmap, lambda o: o["data"].update(a="2")) == []


def test_role_binding_role_ref_is_fixed() -> None:
    def binding() -> Obj:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "a"}],
        }

    changes = refused(binding, lambda o: o["roleRef"].update(name="other"))
    assert fields(changes) == ["RoleBinding/b: roleRef"]
    assert "cannot change roleRef" in changes[0].reason
    assert refused(binding, lambda o: o["subjects"].append({"kind": "User", "name": "u"})) == []


# -- matching objects -------------------------------------------------------------------------


def test_objects_are_matched_by_group_kind_and_name() -> None:
    old, new = deployment(), deployment()
    new["spec"]["selector"] = {"matchLabels": {"other": "x"}}
    renamed = copy.deepcopy(new)
    renamed["metadata"]["name"] = "web2"
    assert refused_changes([old], [renamed], plan_change=False) == []  # a new object
    moved = copy.deepcopy(new)
    moved["apiVersion"] = "extensions/v1beta1"
    assert refused_changes([old], [moved], plan_change=False) == []  # another group
    newer = copy.deepcopy(new)
    newer["apiVersion"] = "apps/v2"
    assert fields(refused_changes([old], [newer], plan_change=False)) == [
        "Deployment/web: spec.selector"
    ]


def test_every_row_quotes_the_apiserver_and_says_how_to_fix() -> None:
    keys = set()
    for row in IMMUTABLE_FIELDS:
        assert row.apiserver, row
        assert row.fix, row
        assert re.fullmatch(r"[A-Za-z]+(\[(\d+|\*)\])?(\.[A-Za-z]+(\[(\d+|\*)\])?)*", row.path)
        assert (row.group, row.kind, row.path) not in keys, f"{row.kind} {row.path} twice"
        keys.add((row.group, row.kind, row.path))
        assert row.rule in Rule
