"""Facts sheets: every image tag cites where it is published, and the templates run each image
the way its upstream expects (user id, ports, probe paths, mounted paths, environment).

The first part checks that ``catalog validate`` refuses each kind of disagreement, on the test
fixture. The second part pins the seven defects issue 19 found in the shipped catalogue: each
test fails on the templates before the fix (commit 2b33538). The third part pins the defects the
sheets' notes found after that (Matomo's code on the volume, Nextcloud's SMTP user, Open Klant's
uWSGI not exec'ed, CKAN's worker named xloader): each fails on the templates of commit 6919f8d;
the Objects API test is a guard on a value that was already right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from controlplane.catalog.facts import check_containers, repository, sheet_for, tag
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ImageFacts
from controlplane.catalog.validation import check_catalog
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

CHECK = stack_check("1.33")
CATALOG = load_catalog()
WEB = "registry.example.org/demo/web"


def errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def _facts(change: Mapping[str, Any]) -> Any:
    def edit(d: dict[str, Any]) -> None:
        d["facts"][WEB].update(change)

    return edit


# -- catalog validate refuses what disagrees with the sheet


def test_the_fixture_agrees_with_its_sheet(fixture_catalog: FixtureCatalog) -> None:
    assert errors(fixture_catalog) == []


def test_a_user_id_the_image_does_not_expect_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(_facts({"user": 1001}))
    found = errors(fixture_catalog)
    assert len(found) == 2, found  # once per version
    assert found[0].startswith(
        "catalog/demo.yaml: versions[0] 1.0.0: Deployment/web: containers[web]"
    )
    assert "runs as user 1000, but the image expects user 1001" in found[0]
    assert f"facts.{WEB}, read at v1.1.0" in found[0]


def test_a_port_the_image_does_not_listen_on_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(_facts({"ports": [8000]}))
    found = errors(fixture_catalog)
    assert found
    assert all("declares port 8080, but the image listens on 8000" in f for f in found)


def test_an_environment_variable_the_image_does_not_read_is_refused(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.edit(_facts({"env": ["GREETING", "WORKERS", "SMTP_PORT"]}))
    found = errors(fixture_catalog)
    # SESSION_KEY comes in through envFrom: the Secret's keys count as names too.
    assert any("sets SESSION_KEY, which the image does not read" in f for f in found), found


def test_a_tag_changed_without_the_sheet_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["versions"][1]["images"].update(web=f"{WEB}:1.1.1"))
    found = errors(fixture_catalog)
    assert found == [
        "catalog/demo.yaml: versions[1].images.web: the tag '1.1.1' of "
        f"'{WEB}:1.1.1' is not in facts.{WEB}.tags (it lists 1.0.0, 1.1.0): add it with the "
        "upstream git tag and the workflow that publishes it, and re-read the facts if they "
        "changed"
    ]


def test_an_image_without_a_sheet_entry_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["facts"].pop(WEB))
    found = errors(fixture_catalog)
    assert len(found) == 2
    assert f"has no facts sheet entry: add facts.{WEB}" in found[0]


def test_an_unused_sheet_entry_is_refused(fixture_catalog: FixtureCatalog) -> None:
    fixture_catalog.edit(lambda d: d["facts"].update({"demo/other": d["facts"][WEB]}))
    assert errors(fixture_catalog) == [
        "catalog/demo.yaml: facts.demo/other: no version uses this image: remove the entry"
    ]


def _container(**fields: Any) -> list[dict[str, Any]]:
    pod = {"containers": [{"name": "c", "image": "x/y:1", **fields}]}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"spec": pod}},
        }
    ]


SHEET = {
    "x/y": ImageFacts(
        source="https://example.org/y",
        tags={"1": {"git_tag": "v1", "published_by": "release.yml"}},  # type: ignore[dict-item]
        read_at="v1",
        files=["Dockerfile"],
        user=None,
        ports=[8000],
        writable=["/data"],
        read_only=["/etc/y.conf"],
        health=["/healthz"],
        env=[],
    )
}


def _mount(path: str, *, read_only: bool = False) -> dict[str, Any]:
    return {"volumeMounts": [{"name": "v", "mountPath": path, "readOnly": read_only}]}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {"readinessProbe": {"httpGet": {"path": "/status", "port": 8000}}},
            "readinessProbe calls /status",
        ),
        (
            {"livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}}},
            "livenessProbe calls port 80",
        ),
        (_mount("/etc/z.conf", read_only=True), "mounts /etc/z.conf read-only"),
        (_mount("/var/lib/y"), "mounts /var/lib/y, but the image writes only to /data"),
        (_mount("/etc/y.conf"), "mounts /etc/y.conf, but the image writes only to /data"),
        ({"securityContext": {"runAsUser": 0}}, None),
    ],
)
def test_probes_and_mounts_are_checked(fields: dict[str, Any], words: str | None) -> None:
    problems = list(check_containers(SHEET, _container(**fields)))
    if words is None:  # user None: any user id is what the image expects
        assert problems == []
        return
    assert len(problems) == 1, problems
    assert problems[0][0] == "Deployment/d: containers[c]"
    assert words in problems[0][1]


def test_what_agrees_passes() -> None:
    fields = {
        "readinessProbe": {"httpGet": {"path": "/healthz?full=1", "port": 8000}},
        "volumeMounts": [
            {"name": "v", "mountPath": "/etc/y.conf", "readOnly": True},
            {"name": "d", "mountPath": "/data/sub"},
        ],
        "ports": [{"containerPort": 8000}],
    }
    assert list(check_containers(SHEET, _container(**fields))) == []


def test_image_references_split_into_repository_and_tag() -> None:
    assert (repository("postgis/postgis:16-3.5"), tag("postgis/postgis:16-3.5")) == (
        "postgis/postgis",
        "16-3.5",
    )
    assert repository("host:5000/a/b:1.0") == "host:5000/a/b"
    assert tag("host:5000/a/b") == ""
    assert repository("a/b@sha256:" + "0" * 64) == "a/b"


# -- the shipped catalogue


def _render(service: str, version: str) -> list[Mapping[str, Any]]:
    release = CATALOG.release(service, version)
    return list(CHECK(release, release.plans[0], {}))


def _sheet(service: str) -> dict[str, ImageFacts]:
    return sheet_for(CATALOG.definition(service), CATALOG.shared_facts)


def _containers(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    obj = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    pod = obj["spec"]["template"]["spec"]
    return {c["name"]: {**c, "_pod": pod} for c in pod.get("containers", [])}


def _user(container: Mapping[str, Any]) -> Any:
    own = (container.get("securityContext") or {}).get("runAsUser")
    return (
        own
        if own is not None
        else (container["_pod"].get("securityContext") or {}).get("runAsUser")
    )


ALL_VERSIONS = [
    (name, version.version)
    for name, definition in sorted(CATALOG.services.items())
    for version in definition.versions
]


@pytest.mark.parametrize(("service", "version"), ALL_VERSIONS)
def test_every_shipped_container_agrees_with_its_sheet(service: str, version: str) -> None:
    assert list(check_containers(_sheet(service), _render(service, version))) == []


def test_every_shipped_image_tag_cites_its_publication() -> None:
    for name, definition in CATALOG.services.items():
        sheet = _sheet(name)
        for version in definition.versions:
            for image in version.images.values():
                facts = sheet[repository(image)]
                published = facts.tags[tag(image)]
                assert published.published_by.strip(), (name, image)
                assert facts.source.startswith("https://"), (name, image)


def test_1_open_zaak_runs_only_published_tags() -> None:
    sheet = _sheet("open-zaak")["openzaak/open-zaak"]
    versions = {v.images["web"] for v in CATALOG.definition("open-zaak").versions}
    assert "openzaak/open-zaak:1.14.2" not in versions  # the 1.14 line has only 1.14.0
    for image in versions:
        assert sheet.tags[tag(image)].git_tag == tag(image)


def test_2_signalen_backend_runs_as_signals_with_upstream_paths_and_a_host_it_allows() -> None:
    sheet = _sheet("signalen")["signalen/backend"]
    objects = _render("signalen", "2.37.17")
    backend = _containers(objects, "Deployment", "backend")["backend"]
    assert _user(backend) == sheet.user == 1000
    mounts = {m["mountPath"] for m in backend.get("volumeMounts", [])}
    assert "/app/media" in mounts
    assert "/media" not in mounts
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and "ALLOWED_HOSTS" in o.get("data", {})
    )
    allowed = config["data"]["ALLOWED_HOSTS"].split(",")
    for probe in ("readinessProbe", "livenessProbe"):
        http = backend[probe]["httpGet"]
        assert http["path"] in sheet.health
        hosts = [h["value"] for h in http.get("httpHeaders", []) if h["name"].lower() == "host"]
        assert hosts, probe
        assert hosts[0] in allowed, (probe, hosts, allowed)


def test_3_signalen_frontend_runs_as_the_user_owning_its_files() -> None:
    sheet = _sheet("signalen")["signalen/frontend"]
    frontend = _containers(_render("signalen", "2.37.17"), "Deployment", "frontend")["frontend"]
    assert _user(frontend) == sheet.user == 1001


#: Plugins the ckan-base 2.11 image carries (CKAN core and ckanext-envvars, per the sheet's
#: source: ckan-docker-base ckan-2.11/Dockerfile).
CKAN_CORE_PLUGINS = {
    "activity", "datastore", "datapusher", "envvars", "image_view", "text_view", "datatables_view",
    "webpage_view", "resource_proxy", "recline_view", "audio_view", "video_view", "tracking",
}  # fmt: skip


@pytest.mark.parametrize("version", ["2.11.2", "2.11.3"])
def test_4_ckan_loads_only_plugins_its_image_contains(version: str) -> None:
    config = next(
        o
        for o in _render("ckan", version)
        if o["kind"] == "ConfigMap" and "CKAN__PLUGINS" in o.get("data", {})
    )
    plugins = set(config["data"]["CKAN__PLUGINS"].split())
    assert "xloader" not in plugins
    assert plugins <= CKAN_CORE_PLUGINS, plugins - CKAN_CORE_PLUGINS


def test_5_decidim_runs_a_published_image_without_a_sidekiq_it_lacks() -> None:
    definition = CATALOG.definition("decidim")
    for version in definition.versions:
        assert repository(version.images["web"]) == "decidim/decidim"
        objects = _render("decidim", version.version)
        commands = [
            " ".join(c.get("command", []) + c.get("args", []))
            for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")
            for c in o["spec"]["template"]["spec"]["containers"]
        ]
        assert not any(re.search(r"\bsidekiq\b", c) for c in commands), commands


@pytest.mark.parametrize("version", ["3.3.9", "3.4.2"])
def test_6_open_formulieren_keeps_the_sdk_its_image_bakes_in(version: str) -> None:
    assert "SDK_RELEASE" not in _sheet("open-formulieren")["openformulieren/open-forms"].env
    for obj in _render("open-formulieren", version):
        assert "SDK_RELEASE" not in (obj.get("data") or {}), obj["metadata"]["name"]


def test_7_postgis_is_a_tag_upstream_still_rebuilds() -> None:
    sheet = CATALOG.shared_facts["postgis/postgis"]
    assert "16-3.4" not in sheet.tags
    used = {
        v.images["postgres"]
        for d in CATALOG.services.values()
        for v in d.versions
        if repository(v.images.get("postgres", "")) == "postgis/postgis"
    }
    assert used == {"postgis/postgis:16-3.5"}


def _object(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


# -- the defects the sheets found next (issue 19, second part): each test fails on the templates
# before the fix, except the Objects API guard (see its docstring)


@pytest.mark.parametrize("version", ["5.1.2", "5.2.1"])
def test_8_matomo_brings_the_volume_to_the_image_version(version: str) -> None:
    """The image's entrypoint copies /usr/src/matomo only onto a volume without matomo.php."""
    release = next(v for v in CATALOG.definition("matomo").versions if v.version == version)
    image = release.images["matomo"]
    pod = _object(_render("matomo", version), "Deployment", "web")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    inits = [c for c in pod.get("initContainers", []) if c["image"] == image]
    assert len(inits) == 1, pod.get("initContainers")
    code = inits[0]
    html = next(m for m in code["volumeMounts"] if m["mountPath"] == "/var/www/html")
    assert volumes[html["name"]]["persistentVolumeClaim"]["claimName"] == "html"
    script = " ".join(code["command"])
    assert "cmp -s /usr/src/matomo/core/Version.php core/Version.php" in script
    assert "tar cf - --one-file-system -C /usr/src/matomo ." in script


@pytest.mark.parametrize("version", ["29.0.8", "30.0.2"])
def test_9_nextcloud_authenticates_to_the_smtp_relay(version: str) -> None:
    """smtp.config.php sets mail_smtpauth only when SMTP_NAME and SMTP_PASSWORD are both set."""
    objects = _render("nextcloud", version)
    config = _object(objects, "ConfigMap", "nextcloud")
    secret = _object(objects, "Secret", "nextcloud")
    assert config["data"].get("SMTP_NAME"), "SMTP_NAME not set"
    assert "SMTP_PASSWORD" in secret.get("stringData", secret.get("data", {}))
    assert {"SMTP_NAME", "SMTP_PASSWORD"} <= set(_sheet("nextcloud")["nextcloud"].env)
    web = _containers(objects, "Deployment", "web")["nextcloud"]
    refs = [s.get("configMapRef") or s.get("secretRef") or {} for s in web["envFrom"]]
    assert "nextcloud" in {r.get("name") for r in refs}


@pytest.mark.parametrize("version", ["3.5.0", "3.6.0"])
def test_10_objects_api_broker_is_what_both_readers_read(version: str) -> None:
    """A guard, not a fix: open-api-framework (0.13.3, 0.14.0) sets the Django setting
    CELERY_BROKER_URL from the env var CELERY_RESULT_BACKEND, and Celery's own settings prefer the
    env var CELERY_BROKER_URL: both must be set, to the same Redis database."""
    data = next(
        o["data"]
        for o in _render("objects-api", version)
        if o["kind"] == "ConfigMap" and "CELERY_RESULT_BACKEND" in o.get("data", {})
    )
    assert data["CELERY_BROKER_URL"] == data["CELERY_RESULT_BACKEND"] == "redis://redis:6379/1"


@pytest.mark.parametrize("version", ["2.17.1", "2.18.0"])
def test_11_open_klant_web_execs_uwsgi_with_upstream_arguments(version: str) -> None:
    """/start.sh runs uwsgi without exec: the shell, PID 1, ignores SIGTERM."""
    web = _containers(_render("open-klant", version), "Deployment", "web")["web"]
    assert web["command"][:2] == ["sh", "-c"], web["command"]
    lines = [line.strip() for line in web["command"][2].splitlines() if line.strip()]
    assert lines[0] == "set -e"
    assert "python src/manage.py migrate" in " ".join(lines)
    assert lines[-1].startswith("exec uwsgi "), lines[-1]
    for argument in ("--ini /uwsgi.ini", "--http :8000", "--mount /=openklant.wsgi:application",
                     "--chdir src", "--die-on-term", "--need-app"):  # fmt: skip
        assert argument in lines[-1], argument


@pytest.mark.parametrize("version", ["2.11.2", "2.11.3"])
def test_12_ckan_jobs_worker_is_named_worker(version: str) -> None:
    objects = _render("ckan", version)
    assert not [o["metadata"]["name"] for o in objects if "xloader" in o["metadata"]["name"]]
    worker = _containers(objects, "Deployment", "worker")["worker"]
    assert worker["command"][-3:] == ["jobs", "worker", "default"]
    assert worker["_pod"]["containers"][0]["name"] == "worker"
    deployment = _object(objects, "Deployment", "worker")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    egress = _object(objects, "NetworkPolicy", "city-platform-allow-egress-worker")
    assert egress["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


@pytest.mark.parametrize("version", ["25.0.6", "26.0.7"])
def test_keycloak_probes_health_on_the_management_port(version: str) -> None:
    # Keycloak 25+ serves /health/* only on the management interface (port 9000 unless
    # KC_HTTP_MANAGEMENT_PORT says otherwise) and only with KC_HEALTH_ENABLED=true.
    sheet = _sheet("keycloak")["quay.io/keycloak/keycloak"]
    objects = _render("keycloak", version)
    kind = next(
        o["kind"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == "keycloak"
    )
    keycloak = _containers(objects, kind, "keycloak")["keycloak"]
    ports = {p["name"]: p["containerPort"] for p in keycloak["ports"]}
    config: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "keycloak":
            config.update(obj["data"])
    assert config["KC_HEALTH_ENABLED"] == "true"
    assert config.get("KC_HTTP_MANAGEMENT_PORT", "9000") == "9000"
    assert "KC_LEGACY_OBSERVABILITY_INTERFACE" not in config
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = keycloak[probe]["httpGet"]
        port = ports.get(http["port"], http["port"])
        assert port == 9000, (probe, http)
        assert port in sheet.ports, (probe, http)
        assert http["path"] in sheet.health, (probe, http)
