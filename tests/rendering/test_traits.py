"""Injected policy (traits): the renderer supplies the restricted security context, the
service account token setting and the plan's resources; a template that sets them
differently is refused, naming its file, line, object and key path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.rendering import PolicyViolation
from controlplane.rendering.catalog_checks import stack_check
from controlplane.rendering.traits import apply_traits, resources_from
from tests.rendering.conftest import RenderFn, with_files

BARE = "40-bare.yaml.j2"
#: A stack written without any of the injected fields.
BARE_TEXT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bare
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bare
spec:
  replicas: 1
  selector:
    matchLabels: {app: bare}
  template:
    metadata:
      labels: {app: bare}
    spec:
      serviceAccountName: bare
      securityContext:
        runAsUser: 1001
        fsGroup: 1001
      initContainers:
        - name: setup
          image: {{ images.web }}
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {cpu: 20m, memory: 32Mi}
      containers:
        - name: app
          image: {{ images.web }}
          securityContext:
            readOnlyRootFilesystem: true
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: bare-nightly
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: nightly
              image: {{ images.web }}
"""


def bare(release: ServiceRelease, old: str = "", new: str = "") -> ServiceRelease:
    text = BARE_TEXT
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return with_files(release, **{BARE: text})


def named(objects: Any, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_a_template_without_traits_gets_them_injected(render: RenderFn, release: ServiceRelease):
    stack = render(bare(release), plan="small")
    account = named(stack.objects, "ServiceAccount", "bare")
    assert account["automountServiceAccountToken"] is False

    pod = named(stack.objects, "Deployment", "bare")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    # The image-specific user and group stay the template's.
    assert pod["securityContext"] == {
        "runAsUser": 1001,
        "fsGroup": 1001,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    [setup], [app] = pod["initContainers"], pod["containers"]
    for container in (setup, app):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    # Resources from the plan only where the container declares none.
    assert app["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert setup["resources"] == {
        "requests": {"cpu": "10m", "memory": "16Mi"},
        "limits": {"cpu": "20m", "memory": "32Mi"},
    }

    cron = named(stack.objects, "CronJob", "bare-nightly")
    nightly = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert nightly["securityContext"]["runAsNonRoot"] is True
    assert nightly["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_resources_follow_the_plan(render: RenderFn, release: ServiceRelease):
    stack = render(bare(release), plan="large")
    pod = named(stack.objects, "Deployment", "bare")["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert pod["initContainers"][0]["resources"]["limits"] == {"cpu": "20m", "memory": "32Mi"}


POD = "Deployment/bare: spec.template.spec."
APP = POD + "containers[0].securityContext."


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "words"),
    [
        (
            "        runAsUser: 1001\n",
            "        runAsUser: 1001\n        runAsNonRoot: false\n",
            21,
            POD + "securityContext.runAsNonRoot",
            "never run as root",
        ),
        (
            "        runAsUser: 1001\n",
            "        runAsUser: 1001\n        seccompProfile: {type: Unconfined}\n",
            21,
            POD + "securityContext.seccompProfile.type",
            "runtime's default",
        ),
        (
            "      serviceAccountName: bare\n",
            "      serviceAccountName: bare\n      automountServiceAccountToken: true\n",
            19,
            POD + "automountServiceAccountToken",
            "needs-service-account-token",
        ),
        (
            "            readOnlyRootFilesystem: true\n",
            "            allowPrivilegeEscalation: true\n",
            32,
            APP + "allowPrivilegeEscalation",
            "forbids privilege escalation",
        ),
        (
            "            readOnlyRootFilesystem: true\n",
            "            privileged: true\n",
            32,
            APP + "privileged",
            "privileged containers are not allowed",
        ),
        (
            "            readOnlyRootFilesystem: true\n",
            "            runAsNonRoot: false\n",
            32,
            APP + "runAsNonRoot",
            "never run as root",
        ),
        (
            "            readOnlyRootFilesystem: true\n",
            "            capabilities: {drop: [NET_RAW]}\n",
            32,
            APP + "capabilities.drop",
            "drops all capabilities",
        ),
        (
            "            readOnlyRootFilesystem: true\n",
            "            capabilities: {add: [SYS_ADMIN]}\n",
            32,
            APP + "capabilities.add",
            "SYS_ADMIN may not be added",
        ),
    ],
)
def test_a_template_that_sets_a_trait_differently_is_refused(
    render: RenderFn, release: ServiceRelease, old: str, new: str, line: int, where: str, words: str
):
    with pytest.raises(PolicyViolation) as caught:
        render(bare(release, old, new))
    [item] = caught.value.errors
    assert item.location == f"templates/webapp/1/{BARE}:{line}: {where}"
    assert words in item.message


def test_a_service_account_that_mounts_its_token_is_refused(
    render: RenderFn, release: ServiceRelease
):
    bad = bare(
        release, "  name: bare\n---", "  name: bare\nautomountServiceAccountToken: true\n---"
    )
    with pytest.raises(PolicyViolation) as caught:
        render(bad)
    [item] = caught.value.errors
    assert item.location == (
        f"templates/webapp/1/{BARE}:5: ServiceAccount/bare: automountServiceAccountToken"
    )


def test_the_token_stays_when_the_pod_declares_it_needs_it(
    render: RenderFn, release: ServiceRelease
):
    ok = bare(
        release,
        "      labels: {app: bare}\n    spec:\n",
        "      labels: {app: bare}\n"
        '      annotations: {city-platform.be/needs-service-account-token: "true"}\n'
        "    spec:\n      automountServiceAccountToken: true\n",
    )
    pod = named(render(ok).objects, "Deployment", "bare")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True


def test_the_shipped_catalogue_already_has_every_trait():
    # Injecting again into rendered shipped stacks changes nothing and refuses nothing
    # (the golden test proves the renders equal those of the hand-written templates).
    catalog = load_catalog()
    check = stack_check("1.33")
    for release in catalog.releases():
        plan = release.plans[0]
        objects = [dict(o) for o in check(release, plan, {})]
        again = copy.deepcopy(objects)
        resources = resources_from(
            {
                "cpu": {"request": plan.cpu.request, "limit": plan.cpu.limit},
                "memory": {"request": plan.memory.request, "limit": plan.memory.limit},
            }
        )
        errors = apply_traits(
            [("x", o) for o in again],
            resources=resources,
            location=lambda file, line: file,
            source={},
        )
        assert errors == [], release.name
        assert again == objects, release.name
