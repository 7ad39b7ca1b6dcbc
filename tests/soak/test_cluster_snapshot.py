"""The soak's view of the real cluster: it finds what the platform applied, across kinds, and
leaves alone what controllers made from it (they copy the labels), so the ``orphan`` rule
judges the platform's objects only."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.cluster.fixtures import Cluster
from tests.soak.invariants import Snapshot, check
from tests.soak.runner import FIELD_MANAGER, ClusterReader, cluster_objects

UNKNOWN = "33333333-0000-4000-8000-000000000000"


@pytest.fixture
def reader(cluster: Cluster) -> Iterator[ClusterReader]:
    reader = ClusterReader(cluster.kubeconfig)
    yield reader
    reader.close()


def _config_map(name: str, namespace: str, tenant: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"city-platform.be/instance-id": UNKNOWN, "city-platform.be/tenant": tenant},
            "annotations": {"city-platform.be/object-digest": "sha256:abc"},
        },
        "data": {"k": "v"},
    }


def test_snapshot_sees_the_platforms_objects_and_not_label_copies(
    cluster: Cluster, namespace: str, reader: ClusterReader
) -> None:
    tenant = f"snap-{secrets.token_hex(3)}"
    config_maps = cluster.resource("ConfigMap", "v1")
    config_maps.server_side_apply(
        body=_config_map("applied", namespace, tenant),
        name="applied",
        namespace=namespace,
        field_manager=FIELD_MANAGER,
    )
    # What a controller does: create an object that carries the owner's labels.
    config_maps.create(body=_config_map("copied", namespace, tenant), namespace=namespace)
    # Another tenant's object (another run on the shared cluster) is not looked at.
    config_maps.server_side_apply(
        body=_config_map("other", namespace, f"{tenant}-x"),
        name="other",
        namespace=namespace,
        field_manager=FIELD_MANAGER,
    )

    found = cluster_objects(reader, [tenant])

    assert [(o.object_id, o.namespace, o.instance_id, o.digest) for o in found] == [
        ("v1/ConfigMap/applied", namespace, UNKNOWN, "sha256:abc")
    ]
    violations = check(Snapshot(objects=found))
    assert [(v.rule, v.subject) for v in violations] == [("orphan", "v1/ConfigMap/applied")]
