"""Databases through CloudNativePG on a target that declares ``cloudnative-pg``.

Every shipped stack with a PostgreSQL server renders, on such a target, a CloudNativePG
``Cluster`` named ``postgres`` instead of the StatefulSet, the apps reach it at
``postgres-rw``, and with a backup destination a daily ``ScheduledBackup`` plus the Secret
``backup-object-store`` from the target's credentials file. Without the capability the stack
is what it always was (tests/catalog/test_golden.py pins it object by object).
"""

from __future__ import annotations

import json
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
)

TENANT = TenantRef(slug="gent", name="Gent", nis_code="44021")
INSTANCE = InstanceRef(name="db", id="00000000-0000-4000-8000-00000000cafe")
ACCESS_KEY, SECRET_KEY = "AKIAEXAMPLE", "s3cr3t-value-of-the-store"
#: Services whose init scripts are shell (``initdb_configmap``): they keep the StatefulSet.
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


def test_the_catalogue_has_stateful_stacks() -> None:
    assert len({r.name for r in STATEFUL}) >= 10


@pytest.mark.parametrize("release", STATEFUL, ids=IDS)
def test_a_capable_target_gets_a_cluster_and_daily_backups(
    release: ServiceRelease, credentials: Path
) -> None:
    objects = _render(release, capable(credentials))
    if release.name in INIT_SCRIPT_SERVICES:
        assert _named(objects, "StatefulSet", "postgres") is not None
        assert not [o for o in objects if o["apiVersion"].startswith("postgresql.cnpg.io/")]
        return
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
    store = spec["backup"]["barmanObjectStore"]
    # Each instance archives into its own folder: every Cluster is named `postgres`, and
    # CloudNativePG refuses to archive into a folder that holds another server's WAL.
    assert store["destinationPath"] == f"s3://city-backups/gent/{cluster['metadata']['namespace']}"
    assert store["endpointURL"] == "https://s3.example.be"
    scheduled = _named(objects, "ScheduledBackup", "postgres-daily")
    assert scheduled is not None
    assert scheduled["spec"]["cluster"]["name"] == "postgres"
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
    assert not [o for o in objects if o["kind"] == "ScheduledBackup"]
    assert _named(objects, "Secret", "backup-object-store") is None
    cluster = _named(objects, "Cluster", "postgres")
    if release.name not in INIT_SCRIPT_SERVICES:
        assert cluster is not None
        assert "backup" not in cluster["spec"]


@pytest.mark.parametrize("release", STATEFUL[:3], ids=IDS[:3])
def test_without_the_capability_the_stack_is_unchanged(
    release: ServiceRelease, credentials: Path
) -> None:
    plain = TargetRef.from_target([], {"backup_destination": "s3://x-bucket/y"})
    assert _render(release, plain) == _render(release, None)


def test_an_unreadable_credentials_file_fails_the_render_without_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "backup.env"
    release = next(r for r in STATEFUL if r.name not in INIT_SCRIPT_SERVICES)
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


RESTORABLE = [r for r in STATEFUL if r.name not in INIT_SCRIPT_SERVICES]


@pytest.mark.parametrize("when", [None, "2026-11-28T09:30:00+00:00"])
@pytest.mark.parametrize("release", RESTORABLE[:1] + RESTORABLE[-1:], ids=IDS[:1] + IDS[-1:])
def test_restored_instance_recovers_from_the_source_folder(
    release: ServiceRelease, credentials: Path, when: str | None
) -> None:
    """``instance create --restore-from``: the Cluster bootstraps by recovery from the source
    instance's own folder of the store (server name ``postgres``), to the asked time, and
    resets the owner's password to this instance's credential."""
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
    store = origin["barmanObjectStore"]
    assert store["destinationPath"] == "s3://city-backups/gent/gent--db"
    assert store["serverName"] == "postgres"
    assert store["s3Credentials"]["accessKeyId"]["name"] == "backup-object-store"
    # Its own backups go to its own folder, never into the source's.
    own = cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
    assert own == f"s3://city-backups/gent/{cluster['metadata']['namespace']}"
    assert own != store["destinationPath"]
