"""Databases through CloudNativePG on a target that declares ``cloudnative-pg``.

Every shipped stack with a PostgreSQL server renders, on such a target, a CloudNativePG
``Cluster`` named ``postgres`` instead of the StatefulSet, the apps reach it at
``postgres-rw``, and with a backup destination backups through the Barman Cloud Plugin (the
``ObjectStore`` ``postgres``, the Cluster's ``spec.plugins``, a daily ``ScheduledBackup``
with ``method: plugin``) plus the Secret ``backup-object-store`` from the target's
credentials file, never CloudNativePG's deprecated in-tree ``barmanObjectStore``; the
database pods get the NetworkPolicies the operator and the instance manager need. A service
whose StatefulSet runs an init script (ckan) declares what it makes instead: managed roles and
``Database`` objects.
Without the capability the stack is what it always was (tests/catalog/test_golden.py pins it
object by object).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.errors import InvalidInput
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.target_ref import (
    CAPABILITIES,
    TargetRef,
    check_backup_config,
    check_capabilities,
    check_network_config,
)

TENANT = TenantRef(slug="gent", name="Gent", nis_code="44021")
INSTANCE = InstanceRef(name="db", id="00000000-0000-4000-8000-00000000cafe")
ACCESS_KEY, SECRET_KEY = "AKIAEXAMPLE", "s3cr3t-value-of-the-store"
#: Services whose StatefulSet runs init scripts (``initdb_configmap``): on a capable target
#: they declare the roles and databases those make (the postgres component's ``roles`` and
#: ``databases``), so they get a Cluster too.
INIT_SCRIPT_SERVICES = {"ckan"}

RENDERER = Renderer(server_secret=b"cnpg-test-secret", kubernetes_version="1.33")


def _has_postgres(release: ServiceRelease) -> bool:
    objects = _render(release, None)
    return any(o["kind"] == "StatefulSet" and o["metadata"]["name"] == "postgres" for o in objects)


def _render(release: ServiceRelease, target: TargetRef | None) -> tuple[dict[str, Any], ...]:
    return RENDERER.render(
        release,
        plan=release.plans[0].name,
        tenant=TENANT,
        instance=INSTANCE,
        parameters={},
        target=target,
    ).objects


STATEFUL = [r for r in load_catalog().releases() if _has_postgres(r)]
IDS = [f"{r.name}@{r.version.version}" for r in STATEFUL]


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "backup.env"
    path.write_text(f"ACCESS_KEY_ID={ACCESS_KEY}\nSECRET_ACCESS_KEY={SECRET_KEY}\n")
    return path


def capable(credentials: Path | None) -> TargetRef:
    config: dict[str, Any] = {}
    if credentials is not None:
        config = {
            "backup_destination": "s3://city-backups/gent",
            "backup_endpoint": "https://s3.example.be",
            "backup_credentials_file": str(credentials),
        }
    return TargetRef.from_target(["cloudnative-pg"], config)


def _named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


PLUGIN = "barman-cloud.cloudnative-pg.io"


def _object_store(objects: tuple[dict[str, Any], ...], name: str) -> dict[str, Any] | None:
    store = _named(objects, "ObjectStore", name)
    assert store is None or store["apiVersion"] == "barmancloud.cnpg.io/v1"
    return store


def test_the_catalogue_has_stateful_stacks() -> None:
    assert len({r.name for r in STATEFUL}) >= 10


@pytest.mark.parametrize("release", STATEFUL, ids=IDS)
def test_a_capable_target_gets_a_cluster_and_daily_backups(
    release: ServiceRelease, credentials: Path
) -> None:
    objects = _render(release, capable(credentials))
    assert _named(objects, "StatefulSet", "postgres") is None
    assert _named(objects, "Service", "postgres") is None
    cluster = _named(objects, "Cluster", "postgres")
    assert cluster is not None
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] == 1
    assert spec["storage"]["size"] == release.plans[0].storage
    assert spec["imageName"] == release.version.images["postgres"]
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] == initdb["owner"]
    postgis = "postgis" in release.version.images["postgres"]
    assert ("postInitApplicationSQL" in initdb) == postgis
    app = _named(objects, "Secret", initdb["secret"]["name"])
    assert app is not None
    assert app["type"] == "kubernetes.io/basic-auth"
    assert app["stringData"]["username"] == initdb["owner"]
    # The owner's password is the credential the apps' own Secrets carry.
    others = [o for o in objects if o["kind"] == "Secret" and o is not app]
    assert any(app["stringData"]["password"] in json.dumps(o) for o in others)
    # Backups through the Barman Cloud Plugin (its sidecar brings barman-cloud; the
    # docker-library images have none), never the deprecated in-tree barmanObjectStore.
    assert "backup" not in spec
    assert "barmanObjectStore" not in json.dumps(objects)
    assert spec["plugins"] == [
        {"name": PLUGIN, "isWALArchiver": True, "parameters": {"barmanObjectName": "postgres"}}
    ]
    object_store = _object_store(objects, "postgres")
    assert object_store is not None
    assert object_store["spec"]["retentionPolicy"] == "30d"
    store = object_store["spec"]["configuration"]
    # Each instance archives into its own folder: every Cluster is named `postgres`, and
    # CloudNativePG refuses to archive into a folder that holds another server's WAL.
    assert store["destinationPath"] == f"s3://city-backups/gent/{cluster['metadata']['namespace']}"
    assert store["endpointURL"] == "https://s3.example.be"
    assert "serverName" not in store  # the plugin wants it empty (the server is the Cluster)
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ObjectStore"] == ["postgres"]
    scheduled = _named(objects, "ScheduledBackup", "postgres-daily")
    assert scheduled is not None
    assert scheduled["spec"]["cluster"]["name"] == "postgres"
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"] == {"name": PLUGIN}
    backup_secret = _named(objects, "Secret", "backup-object-store")
    assert backup_secret is not None
    assert backup_secret["stringData"] == {
        "ACCESS_KEY_ID": ACCESS_KEY,
        "SECRET_ACCESS_KEY": SECRET_KEY,
    }
    assert store["s3Credentials"]["secretAccessKey"]["name"] == "backup-object-store"
    # The apps connect to the operator's read-write Service, nothing to `postgres`.
    text = json.dumps([o for o in objects if o["kind"] in ("ConfigMap", "Secret", "Deployment")])
    assert "postgres-rw" in text
    assert "@postgres:" not in text
    assert "//postgres:" not in text
    hosts = ("DB_HOST", "POSTGRES_HOST", "DATABASE_HOST_OVERRIDE")
    for config in (o for o in objects if o["kind"] == "ConfigMap"):
        assert all(config.get("data", {}).get(key, "postgres-rw") == "postgres-rw" for key in hosts)
    # The credentials appear in that one Secret only.
    assert sum(SECRET_KEY in json.dumps(o) for o in objects) == 1


@pytest.mark.parametrize("release", STATEFUL, ids=IDS)
def test_without_a_destination_there_is_no_backup(release: ServiceRelease) -> None:
    objects = _render(release, capable(None))
    assert not [o for o in objects if o["kind"] in ("ScheduledBackup", "ObjectStore")]
    assert _named(objects, "Secret", "backup-object-store") is None
    cluster = _named(objects, "Cluster", "postgres")
    assert cluster is not None
    assert "backup" not in cluster["spec"]
    assert "plugins" not in cluster["spec"]


@pytest.mark.parametrize("release", STATEFUL[:3], ids=IDS[:3])
def test_without_the_capability_the_stack_is_unchanged(
    release: ServiceRelease, credentials: Path
) -> None:
    plain = TargetRef.from_target([], {"backup_destination": "s3://x-bucket/y"})
    assert _render(release, plain) == _render(release, None)


def test_an_unreadable_credentials_file_fails_the_render_without_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "backup.env"
    release = STATEFUL[0]
    target = TargetRef.from_target(
        ["cloudnative-pg"],
        {"backup_destination": "s3://b-bucket/p", "backup_credentials_file": str(missing)},
    )
    with pytest.raises(InvalidInput) as raised:
        _render(release, target)
    assert str(missing) not in str(raised.value) + repr(raised.value.errors)
    assert "credentials" in str(raised.value)


def test_the_credentials_never_show_in_the_target_ref(credentials: Path) -> None:
    ref = capable(credentials)
    assert SECRET_KEY not in repr(ref)
    assert SECRET_KEY not in json.dumps(ref.context())


def test_capabilities_are_a_closed_set() -> None:
    assert check_capabilities(["cloudnative-pg", "cloudnative-pg"]) == ["cloudnative-pg"]
    with pytest.raises(InvalidInput) as raised:
        check_capabilities(["cloudnative-pg", "crunchy"])
    assert raised.value.status == 422
    assert "'crunchy'" in str(raised.value)
    assert all(c in str(raised.value) for c in CAPABILITIES)


DEST = {"backup_destination": "s3://bucket/x"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"backup_destination": "s3://UPPER/x"}, "config.backup_destination"),
        ({"backup_destination": "gs://bucket/x"}, "config.backup_destination"),
        ({**DEST, "backup_endpoint": "ftp://h"}, "config.backup_endpoint"),
        ({**DEST, "backup_endpoint": "https://u:p@h"}, "config.backup_endpoint"),
        ({"backup_destination": "s3://bucket/x"}, "config.backup_credentials_file"),
        ({"backup_endpoint": "https://h"}, "config.backup_destination"),
    ],
)  # fmt: skip
def test_a_bad_object_store_is_refused(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_backup_config(config, ["cloudnative-pg"])
    assert [e.location for e in raised.value.errors] == [field]


def test_a_good_object_store_is_accepted(credentials: Path) -> None:
    check_backup_config(
        {
            "backup_destination": "s3://city-backups/gent/db",
            "backup_endpoint": "https://s3.example.be:9000",
            "backup_credentials_file": str(credentials),
        },
        ["cloudnative-pg"],
    )
    check_backup_config({}, [])


RESTORABLE = STATEFUL


@pytest.mark.parametrize("when", [None, "2026-11-28T09:30:00+00:00"])
@pytest.mark.parametrize("release", RESTORABLE[:1] + RESTORABLE[-1:], ids=IDS[:1] + IDS[-1:])
def test_restored_instance_recovers_from_the_source_folder(
    release: ServiceRelease, credentials: Path, when: str | None
) -> None:
    """``instance create --restore-from``: the Cluster bootstraps by recovery from the source
    instance's own folder of the store (the ObjectStore ``postgres-origin`` through the
    plugin, server name ``postgres``), to the asked time, and resets the owner's password to
    this instance's credential."""
    copy = InstanceRef(
        name="db-copy", id="00000000-0000-4000-8000-00000000beef", restore=("gent--db", when)
    )
    objects = RENDERER.render(
        release, plan=release.plans[0].name, tenant=TENANT, instance=copy, parameters={},
        target=capable(credentials),
    ).objects  # fmt: skip
    cluster = _named(objects, "Cluster", "postgres")
    assert cluster is not None
    bootstrap = cluster["spec"]["bootstrap"]
    assert "initdb" not in bootstrap
    recovery = bootstrap["recovery"]
    assert recovery["source"] == "origin"
    assert recovery["secret"]["name"] == "postgres-app"
    assert recovery.get("recoveryTarget", {}).get("targetTime") == when
    (origin,) = cluster["spec"]["externalClusters"]
    assert origin["name"] == "origin"
    assert origin["plugin"] == {
        "name": PLUGIN,
        "parameters": {"barmanObjectName": "postgres-origin", "serverName": "postgres"},
    }
    assert "barmanObjectStore" not in json.dumps(objects)
    source = _object_store(objects, "postgres-origin")
    assert source is not None
    store = source["spec"]["configuration"]
    assert store["destinationPath"] == "s3://city-backups/gent/gent--db"
    assert store["endpointURL"] == "https://s3.example.be"
    assert store["s3Credentials"]["accessKeyId"]["name"] == "backup-object-store"
    # Only read from: this instance applies no retention policy to the source's backups.
    assert "retentionPolicy" not in source["spec"]
    # Its own backups go to its own folder, never into the source's.
    (archiver,) = cluster["spec"]["plugins"]
    assert archiver["parameters"] == {"barmanObjectName": "postgres"}
    own_store = _object_store(objects, "postgres")
    assert own_store is not None
    own = own_store["spec"]["configuration"]["destinationPath"]
    assert own == f"s3://city-backups/gent/{cluster['metadata']['namespace']}"
    assert own != store["destinationPath"]
    # The credentials Secret once, for both stores.
    assert len([o for o in objects if o["metadata"]["name"] == "backup-object-store"]) == 1


def _policy(objects: tuple[dict[str, Any], ...], name: str) -> dict[str, Any] | None:
    return _named(objects, "NetworkPolicy", f"city-platform-{name}")


@pytest.mark.parametrize("release", STATEFUL, ids=IDS)
def test_the_database_pods_get_their_network_policies(
    release: ServiceRelease, credentials: Path
) -> None:
    """Under the baseline's default-deny: the operator (cnpg-system) reaches each instance's
    status endpoint (8000) and PostgreSQL (5432); the instance manager reaches the Kubernetes
    API (443/6443; its address is unknown when rendering, so anywhere) and the object store.
    The apps reach 5432 through the baseline's allow-same-namespace."""
    objects = _render(release, capable(credentials))
    pods = {"matchLabels": {"cnpg.io/cluster": "postgres"}}
    ingress = _policy(objects, "allow-postgres-operator")
    assert ingress is not None
    assert ingress["spec"]["podSelector"] == pods
    assert ingress["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = ingress["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}}}
    ]
    assert {p["port"] for p in rule["ports"]} == {8000, 5432}
    egress = _policy(objects, "allow-postgres-egress")
    assert egress is not None
    assert egress["spec"]["podSelector"] == pods
    assert egress["spec"]["policyTypes"] == ["Egress"]
    (api,) = egress["spec"]["egress"]  # the object store (https, 443) is covered by it
    assert api["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    same = _policy(objects, "allow-same-namespace")
    assert same is not None
    assert same["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_the_policies_follow_the_target_config(credentials: Path) -> None:
    ref = TargetRef.from_target(
        ["cloudnative-pg"],
        {
            "backup_destination": "s3://city-backups/gent",
            "backup_endpoint": "https://minio.gent.local:9000",
            "backup_credentials_file": str(credentials),
            "cnpg_operator_namespace": "postgres-operator",
            "apiserver_cidrs": ["10.96.0.1/32", "192.168.10.5/32"],
        },
    )
    objects = _render(STATEFUL[0], ref)
    ingress = _policy(objects, "allow-postgres-operator")
    assert ingress is not None
    peer = ingress["spec"]["ingress"][0]["from"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "postgres-operator"
    }
    egress = _policy(objects, "allow-postgres-egress")
    assert egress is not None
    api, store = egress["spec"]["egress"]
    assert api["to"] == [
        {"ipBlock": {"cidr": "10.96.0.1/32"}},
        {"ipBlock": {"cidr": "192.168.10.5/32"}},
    ]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert store == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
        "ports": [{"protocol": "TCP", "port": 9000}],
    }
    # Without a destination: the apiserver only.
    bare = _render(
        STATEFUL[0],
        TargetRef.from_target(["cloudnative-pg"], {"apiserver_cidrs": ["10.96.0.1/32"]}),
    )
    egress = _policy(bare, "allow-postgres-egress")
    assert egress is not None
    assert [r["to"] for r in egress["spec"]["egress"]] == [[{"ipBlock": {"cidr": "10.96.0.1/32"}}]]


@pytest.mark.parametrize("release", STATEFUL[:3], ids=IDS[:3])
def test_no_database_policies_without_the_capability(release: ServiceRelease) -> None:
    objects = _render(release, TargetRef.from_target([], {}))
    assert _policy(objects, "allow-postgres-operator") is None
    assert _policy(objects, "allow-postgres-egress") is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"cnpg_operator_namespace": "CNPG_System"}, "config.cnpg_operator_namespace"),
        ({"cnpg_operator_namespace": "a" * 64}, "config.cnpg_operator_namespace"),
        ({"apiserver_cidrs": ["10.96.0.1"]}, None),
        ({"apiserver_cidrs": ["10.96.0.0/8"]}, "config.apiserver_cidrs"),
        ({"apiserver_cidrs": ["kubernetes"]}, "config.apiserver_cidrs"),
        ({"apiserver_cidrs": []}, "config.apiserver_cidrs"),
        ({"apiserver_cidrs": "10.96.0.1/32"}, "config.apiserver_cidrs"),
        ({"cnpg_operator_namespace": "cnpg-system", "apiserver_cidrs": ["fd00::1/128"]}, None),
    ],
)  # fmt: skip
def test_the_network_config_is_checked(config: dict[str, Any], field: str | None) -> None:
    if field is None:
        check_network_config(config)
        check_backup_config(config, [])
        return
    with pytest.raises(InvalidInput) as raised:
        check_backup_config(config, ["cloudnative-pg"])
    assert [e.location for e in raised.value.errors] == [field]
    assert "--" in (raised.value.hint or "")


def _init_script(release: ServiceRelease) -> str:
    plain = _render(release, None)
    script = _named(plain, "ConfigMap", "postgres-initdb")
    assert script is not None
    return "".join(script["data"].values())


@pytest.mark.parametrize(
    "release", [r for r in STATEFUL if r.name in INIT_SCRIPT_SERVICES],
    ids=[i for i, r in zip(IDS, STATEFUL, strict=True) if r.name in INIT_SCRIPT_SERVICES],
)  # fmt: skip
def test_init_script_roles_and_databases_are_declared(
    release: ServiceRelease, credentials: Path
) -> None:
    """What the StatefulSet's init script creates (its CREATE ROLE / CREATE DATABASE), the
    Cluster declares: the bootstrap database and owner, managed roles whose passwords are the
    credentials the app connects with, and ``Database`` objects with their owners."""
    script = _init_script(release)
    roles = set(re.findall(r"CREATE ROLE (\w+)", script))
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", script))
    assert roles
    assert databases
    objects = _render(release, capable(credentials))
    assert _named(objects, "ConfigMap", "postgres-initdb") is None
    assert _named(objects, "StatefulSet", "postgres") is None
    cluster = _named(objects, "Cluster", "postgres")
    assert cluster is not None
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    # One database of the script is the bootstrap one, with its owner.
    assert databases.pop(initdb["database"]) == initdb["owner"]
    managed = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert set(managed) | {initdb["owner"]} == roles
    # The URLs the app connects with: role -> password.
    text = json.dumps([o for o in objects if o["kind"] == "Secret"])
    used = dict(re.findall(r"postgresql://(\w+):([^@]+)@postgres-rw:5432/", text))
    owner = _named(objects, "Secret", initdb["secret"]["name"])
    assert owner is not None
    assert used[initdb["owner"]] == owner["stringData"]["password"]
    for name, role in managed.items():
        assert role["ensure"] == "present"
        assert role["login"] is True
        assert not role.get("superuser")
        secret = _named(objects, "Secret", role["passwordSecret"]["name"])
        assert secret is not None
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert secret["stringData"]["username"] == name
        assert secret["stringData"]["password"] == used[name]
    declared = {
        o["spec"]["name"]: o["spec"]
        for o in objects
        if o["kind"] == "Database" and o["apiVersion"] == "postgresql.cnpg.io/v1"
    }
    assert {n: d["owner"] for n, d in declared.items()} == databases
    assert all(d["cluster"] == {"name": "postgres"} for d in declared.values())
    # No password is written into SQL or the Cluster.
    assert not any(p in json.dumps(cluster) for p in used.values())
