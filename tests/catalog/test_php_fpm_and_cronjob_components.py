"""The shared ``php-fpm`` and ``cronjob`` components (templates/_components/): PHP-FPM behind
an unprivileged nginx sidecar (Matomo, Nextcloud), and a CronJob that never overlaps itself
(Matomo, Nextcloud, Decidim). Issue 15."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.validation import check_catalog
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

COMPONENTS = Path(__file__).resolve().parents[2] / "templates" / "_components"
DATA = "demo/2/20-data.yaml.j2"
WEB = "demo/2/10-web.yaml.j2"
CHECK = stack_check("1.33")
PHP = (
    "{%- set http %}\nserver {\n  listen 8080;\n  location / { return 404; }\n}\n{%- endset %}\n"
    '{{ component("php-fpm", app="web", nginx_http=http) }}'
)
CRON = (
    '{{ component("cronjob", name="nightly", schedule="0 3 * * *", image="web",'
    ' service_account="default", pod_security={"runAsUser": 1000}, command=["run"]) }}'
)


def _call(fc: FixtureCatalog, call: str) -> None:
    folder = fc.templates_dir / "_components"
    folder.mkdir(exist_ok=True)
    for name in ("workload", "php-fpm", "cronjob"):
        shutil.copy(COMPONENTS / f"{name}.yaml.j2", folder / f"{name}.yaml.j2")
    fc.template(DATA).write_text(call + "\n")
    fc.declare_data()  # the call replaces the fixture's volume
    if "php-fpm" in call:  # it makes the Deployment `web`: drop the fixture's own
        web = fc.template(WEB)
        documents = web.read_text().split("---\n")
        web.write_text("---\n".join(d for d in documents if "kind: Deployment" not in d))

    def nginx_image(data: dict[str, Any]) -> None:
        for version in data["versions"]:
            version["images"]["nginx"] = "registry.example.org/demo/nginx:1.27"

    fc.edit(nginx_image)


def _errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def _objects(fc: FixtureCatalog, plan: int) -> dict[tuple[str, str], dict[str, Any]]:
    release = load_catalog(fc.catalog_dir, fc.templates_dir).release("demo", "1.1.0")
    objects = [dict(o) for o in CHECK(release, release.plans[plan], {})]
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_php_fpm_renders_the_application_behind_nginx(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, PHP)
    assert _errors(fixture_catalog) == []
    objects = _objects(fixture_catalog, 1)
    conf = objects["ConfigMap", "nginx"]["data"]["nginx.conf"]
    assert conf.startswith("worker_processes auto;\npid /tmp/nginx.pid;\n")
    assert conf.endswith(
        "  server_tokens off;\n  server {\n    listen 8080;\n"
        "    location / { return 404; }\n  }\n}\n"
    )
    assert ("ServiceAccount", "web") in objects
    assert ("PodDisruptionBudget", "web") in objects  # the plan has 2 replicas
    pod = objects["Deployment", "web"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "web"
    assert pod["securityContext"]["runAsUser"] == 33
    php, nginx = pod["containers"]
    assert php["name"] == "web"
    assert php["image"] == "registry.example.org/demo/web:1.1.0"
    assert php["envFrom"] == [{"configMapRef": {"name": "web"}}, {"secretRef": {"name": "web"}}]
    assert "startupProbe" not in php
    assert nginx["image"] == "registry.example.org/demo/nginx:1.27"
    assert (
        nginx["securityContext"]["allowPrivilegeEscalation"] is False
    )  # injected into the sidecar too
    assert [v["name"] for v in pod["volumes"]] == ["html", "nginx", "tmp", "nginx-tmp"]


def test_php_fpm_extra_mounts_and_startup_probe(fixture_catalog: FixtureCatalog) -> None:
    _call(
        fixture_catalog,
        PHP.replace(
            "nginx_http=http",
            'nginx_http=http, startup_attempts=60, annotations={"a": "b"},'
            ' volume_mounts=[{"name": "php", "mountPath": "/etc/php"}],'
            ' volumes=[{"name": "php", "emptyDir": {}}]',
        ),
    )
    assert _errors(fixture_catalog) == []
    web = _objects(fixture_catalog, 0)["Deployment", "web"]
    assert web["metadata"]["annotations"] == {"a": "b"}
    pod = web["spec"]["template"]["spec"]
    php = pod["containers"][0]
    assert php["startupProbe"]["failureThreshold"] == 60
    assert [m["mountPath"] for m in php["volumeMounts"]] == ["/var/www/html", "/etc/php", "/tmp"]
    assert [v["name"] for v in pod["volumes"]] == ["html", "php", "nginx", "tmp", "nginx-tmp"]


def test_a_cronjob_never_overlaps_itself(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, CRON)
    assert _errors(fixture_catalog) == []
    cron = _objects(fixture_catalog, 0)["CronJob", "nightly"]
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "nightly"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "nightly"
    assert container["command"] == ["run"]
    assert "resources" in container  # the plan's, added by the renderer
    assert "volumes" not in pod["spec"]


def test_a_cronjob_without_a_command_is_refused(fixture_catalog: FixtureCatalog) -> None:
    _call(fixture_catalog, CRON.replace('command=["run"]', "command=[]"))
    found = _errors(fixture_catalog)
    assert found, "refused"
    assert f"templates/{DATA}:1: component 'cronjob' refuses these inputs" in found[0]
