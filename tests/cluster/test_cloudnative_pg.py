"""Every shipped stack with a database, rendered for a ``cloudnative-pg`` target with a backup
destination, applied to the real apiserver with CloudNativePG's real CRDs (v1.28.0, pinned in
tests/cluster/go/cloudnative-pg) and its Barman Cloud Plugin's ``ObjectStore`` CRD (v0.7.0,
tests/cluster/go/plugin-barman-cloud): the apiserver must accept every object, the ``Cluster``,
``ScheduledBackup`` and ``ObjectStore`` included (a restored stack's source ``ObjectStore``
too), through the Kubernetes target (server-side apply), with the
database pods' NetworkPolicies and, for ckan (whose StatefulSet runs an init script), the
managed roles and the ``Database`` the init script would make.

Only admission is tested: no CloudNativePG operator runs in the cluster tier (and kwok's pods
never run an instance manager), and no plugin: nothing here claims the databases come up or
back up.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.kube.client import KubeClient
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.target_ref import TargetRef
from tests.cluster.fixtures import Cluster

CNPG = "postgresql.cnpg.io/v1"
BARMAN = "barmancloud.cnpg.io/v1"
PLUGIN = "barman-cloud.cloudnative-pg.io"


@dataclass
class Applied:
    stack: Stack
    error: BaseException | None = None


RELEASES: list[tuple[str, ServiceRelease]] = [
    (f"{r.name}@{r.version.version}", r) for r in load_catalog().releases()
]


@pytest.fixture(scope="module")
def target(cluster: Cluster) -> Iterator[KubernetesTarget]:
    for crd, module in [
        ("clusters.postgresql.cnpg.io", "cloudnative-pg"),
        ("scheduledbackups.postgresql.cnpg.io", "cloudnative-pg"),
        ("databases.postgresql.cnpg.io", "cloudnative-pg"),
        ("objectstores.barmancloud.cnpg.io", "plugin-barman-cloud"),
    ]:
        if (
            cluster.get("CustomResourceDefinition", crd, api_version="apiextensions.k8s.io/v1")
            is None
        ):
            pytest.fail(
                f"the cluster has no CRD {crd}: run `make cluster` "
                f"(tests/cluster/build.sh builds tests/cluster/go/{module})"
            )
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield KubernetesTarget(port, name="cnpg-tier", delete_timeout=180)
    port.close()


@pytest.fixture(scope="module")
def applied(
    target: KubernetesTarget, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Applied]]:
    store = tmp_path_factory.mktemp("store") / "backup.env"
    store.write_text("ACCESS_KEY_ID=AKIACLUSTERTIER\nSECRET_ACCESS_KEY=cluster-tier-secret\n")
    ref = TargetRef.from_target(
        ["cloudnative-pg"],
        {
            "backup_destination": "s3://city-backups/cluster-tier",
            "backup_endpoint": "https://s3.example.be",
            "backup_credentials_file": str(Path(store)),
        },
    )
    renderer = Renderer(server_secret=b"cnpg-cluster-tier", kubernetes_version="1.33")
    tenant = TenantRef(slug=f"c{secrets.token_hex(2)}", name="CNPG", nis_code="44021")
    stacks: dict[str, Applied] = {}
    # Every stack as created, plus one created from another instance's backups
    # (`instance create --restore-from NAME@TIME`: a recovery bootstrap).
    restored = ("restored", (f"{tenant.slug}--source", "2026-11-28T09:30:00+00:00"))
    for key, release, restore in [(k, r, None) for k, r in RELEASES] + [
        (f"{restored[0]}@{RELEASES[-1][0]}", RELEASES[-1][1], restored[1])
    ]:
        name = key.replace("@", "-").replace(".", "-")[:40].strip("-")
        instance = InstanceRef(
            name=name, id=f"00000000-0000-4000-8000-{secrets.token_hex(6)}", restore=restore
        )
        rendered = renderer.render(
            release,
            plan=release.plans[0].name,
            tenant=tenant,
            instance=instance,
            parameters={},
            target=ref,
        )
        if not any(o["apiVersion"] == CNPG for o in rendered.objects):
            continue  # no database
        stacks[key] = Applied(
            Stack(
                tenant=tenant.slug,
                instance=instance.name,
                instance_id=instance.id,
                namespace=rendered.namespace,
                objects=rendered.objects,
                digests=rendered.object_digests(),
                digest=rendered.digest,
            )
        )

    def apply(item: Applied) -> None:
        try:
            target.apply(item.stack)
        except Exception as exc:  # judged per stack below
            item.error = exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(apply, stacks.values()))
    yield stacks

    def delete(item: Applied) -> None:
        s = item.stack
        target.delete(tenant=s.tenant, instance=s.instance, namespace=s.namespace)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(delete, stacks.values()))


def test_every_stack_with_a_database_has_a_cluster(applied: dict[str, Applied]) -> None:
    assert len({k.split("@")[0] for k in applied}) >= 11, sorted(applied)  # 10 + restored
    assert any(k.startswith("restored@") for k in applied)


def test_the_apiserver_accepts_every_object(applied: dict[str, Applied], cluster: Cluster) -> None:
    refused = {k: str(a.error)[:300] for k, a in applied.items() if a.error is not None}
    assert not refused, refused
    for key, item in applied.items():
        ns = item.stack.namespace
        for obj in item.stack.objects:
            if obj["kind"] == "Namespace":
                continue
            found = cluster.get(
                obj["kind"], obj["metadata"]["name"], ns, api_version=obj["apiVersion"]
            )
            assert found is not None, f"{key}: {obj['kind']}/{obj['metadata']['name']} missing"
        stored = cluster.get("Cluster", "postgres", ns, api_version=CNPG)
        assert stored is not None
        assert "backup" not in stored["spec"]  # no in-tree barmanObjectStore
        assert stored["spec"]["plugins"] == [
            {
                "name": PLUGIN,
                "enabled": True,  # the CRD's default
                "isWALArchiver": True,
                "parameters": {"barmanObjectName": "postgres"},
            }
        ]
        store = cluster.get("ObjectStore", "postgres", ns, api_version=BARMAN)
        assert store is not None
        assert store["spec"]["retentionPolicy"] == "30d"
        assert store["spec"]["configuration"]["destinationPath"] == (
            f"s3://city-backups/cluster-tier/{ns}"
        )
        bootstrap = stored["spec"]["bootstrap"]
        origin = cluster.get("ObjectStore", "postgres-origin", ns, api_version=BARMAN)
        if key.startswith("restored@"):
            assert bootstrap["recovery"]["recoveryTarget"]["targetTime"].startswith("2026-11-28")
            (external,) = stored["spec"]["externalClusters"]
            assert external["plugin"]["name"] == PLUGIN
            assert external["plugin"]["parameters"] == {
                "barmanObjectName": "postgres-origin",
                "serverName": "postgres",
            }
            assert origin is not None
            assert origin["spec"]["configuration"]["destinationPath"].endswith("--source")
        else:
            assert "initdb" in bootstrap
            assert origin is None
        scheduled = cluster.get("ScheduledBackup", "postgres-daily", ns, api_version=CNPG)
        assert scheduled is not None
        assert scheduled["spec"]["cluster"]["name"] == "postgres"
        assert scheduled["spec"]["method"] == "plugin"
        assert scheduled["spec"]["pluginConfiguration"] == {"name": PLUGIN}


def test_the_database_pods_policies_and_declared_roles_are_stored(
    applied: dict[str, Applied], cluster: Cluster
) -> None:
    for key, item in applied.items():
        ns = item.stack.namespace
        ingress = cluster.get(
            "NetworkPolicy", "city-platform-allow-postgres-operator", ns,
            api_version="networking.k8s.io/v1",
        )  # fmt: skip
        assert ingress is not None, key
        assert ingress["spec"]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "postgres"}
        assert {p["port"] for p in ingress["spec"]["ingress"][0]["ports"]} == {8000, 5432}
        egress = cluster.get(
            "NetworkPolicy", "city-platform-allow-postgres-egress", ns,
            api_version="networking.k8s.io/v1",
        )  # fmt: skip
        assert egress is not None, key
        assert {p["port"] for p in egress["spec"]["egress"][0]["ports"]} == {443, 6443}
    ckan = [item for key, item in applied.items() if key.startswith("ckan@")]
    assert ckan
    for item in ckan:
        ns = item.stack.namespace
        stored = cluster.get("Cluster", "postgres", ns, api_version=CNPG)
        assert stored is not None
        roles = {r["name"]: r for r in stored["spec"]["managed"]["roles"]}
        assert set(roles) == {"ckan_datastore_write", "ckan_datastore_read"}
        for role in roles.values():
            secret = cluster.get("Secret", role["passwordSecret"]["name"], ns)
            assert secret is not None
            assert secret["type"] == "kubernetes.io/basic-auth"
        database = cluster.get("Database", "datastore", ns, api_version=CNPG)
        assert database is not None
        assert database["spec"]["owner"] == "ckan_datastore_write"
        assert database["spec"]["cluster"]["name"] == "postgres"
        assert stored["spec"]["bootstrap"]["initdb"]["owner"] == "ckan"


def test_the_crd_refuses_a_cluster_with_no_instances(
    applied: dict[str, Applied], cluster: Cluster
) -> None:
    """The CRD really validates (the test above is not a no-op): a bad Cluster is refused."""
    item = next(iter(applied.values()))
    body = {
        "apiVersion": CNPG,
        "kind": "Cluster",
        "metadata": {"name": f"bad-{secrets.token_hex(3)}"},
        "spec": {"instances": 0, "storage": {"size": "1Gi"}},
    }
    with pytest.raises(ApiException) as raised:
        cluster.resource("Cluster", CNPG).create(
            body=body, namespace=item.stack.namespace, dry_run="All"
        )
    assert raised.value.status == 422


def test_the_crd_refuses_an_object_store_without_a_destination(
    applied: dict[str, Applied], cluster: Cluster
) -> None:
    """The plugin's ObjectStore CRD really validates: no ``destinationPath``, refused."""
    item = next(iter(applied.values()))
    body = {
        "apiVersion": BARMAN,
        "kind": "ObjectStore",
        "metadata": {"name": f"bad-{secrets.token_hex(3)}"},
        "spec": {"configuration": {"endpointURL": "https://s3.example.be"}},
    }
    with pytest.raises(ApiException) as raised:
        cluster.resource("ObjectStore", BARMAN).create(
            body=body, namespace=item.stack.namespace, dry_run="All"
        )
    assert raised.value.status == 422
