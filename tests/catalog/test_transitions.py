"""Plan changes and upgrades of a catalogue, rendered for real and compared for refused updates.

The fixture's two versions and two plans give one plan change per version and one upgrade
per plan; each test breaks one of them and asserts the one error, where it is reported
and why.
"""

from __future__ import annotations

import pytest

from controlplane.catalog.validation import CatalogReport, check_catalog
from controlplane.errors import ErrorItem
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

FILE = "catalog/demo.yaml"
WEB = "demo/2/10-web.yaml.j2"
DATA = "demo/2/20-data.yaml.j2"
CHECK = stack_check("1.33")


def report_of(fc: FixtureCatalog) -> CatalogReport:
    return check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )


def only_error(fc: FixtureCatalog) -> ErrorItem:
    errors = report_of(fc).errors
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_the_fixture_changes_plan_and_upgrades_cleanly(fixture_catalog: FixtureCatalog) -> None:
    report = report_of(fixture_catalog)
    assert report.errors == []
    # One plan pair per version; 1.0.0 → 1.1.0 in each of the two plans.
    assert (report.stacks, report.plan_changes, report.upgrades) == (4, 2, 2)


def test_a_selector_that_depends_on_the_plan_is_refused_once_per_pair(
    fixture_catalog: FixtureCatalog,
) -> None:
    for indent, after in (("      ", "  template:\n"), ("        ", "    spec:\n")):
        # The selector and the pod labels both get the plan's name.
        fixture_catalog.replace_in_template(
            WEB,
            f"{indent}app.kubernetes.io/instance: {{{{ instance.name }}}}\n{after}",
            f"{indent}app.kubernetes.io/instance: {{{{ instance.name }}}}\n"
            f"{indent}tier: {{{{ plan.name }}}}\n{after}",
        )
    errors = report_of(fixture_catalog).errors
    assert [e.location for e in errors] == [
        f"{FILE}: versions[1] 1.1.0, plan changes: Deployment/web: spec.selector",
        # 1.0.0 had no tier label, so the upgrade changes the selector too.
        f"{FILE}: versions[1] 1.1.0, upgrade from 1.0.0: Deployment/web: spec.selector",
    ]
    error = errors[0]
    assert error.message.startswith(
        'differs between plans (small → large: spec.selector.matchLabels.tier: "small" → '
        '"large"), but the apiserver refuses to change it on update (spec.selector: Invalid '
        "value: …: field is immutable)."
    )
    assert "large → small" not in error.message  # one pair, reported once
    assert "app.kubernetes.io/component" in error.message  # how to fix it


def test_a_service_turning_headless_on_upgrade_is_refused(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.replace_in_template(
        WEB,
        "  ports:\n    - name: http\n      port: 8080\n",
        "  clusterIP: None\n  ports:\n    - name: http\n      port: 8080\n",
    )
    error = only_error(fixture_catalog)
    assert error.location == (
        f"{FILE}: versions[1] 1.1.0, upgrade from 1.0.0: Service/web: spec.clusterIP"
    )
    assert error.message.startswith(
        'changes on this upgrade (plan small: spec.clusterIP: (absent) → "None"; '
        'plan large: spec.clusterIP: (absent) → "None"), but the apiserver refuses'
    )
    assert "may not change once set" in error.message


def test_a_claim_that_shrinks_on_upgrade_is_refused_but_not_on_a_plan_change(
    fixture_catalog: FixtureCatalog,
) -> None:
    # 1.0.0 gets a 10Gi claim; 1.1.0 sizes it by plan (1Gi small, 5Gi large).
    (fixture_catalog.template("demo/1/20-data.yaml.j2")).write_text(
        fixture_catalog.template(DATA).read_text().replace("{{ plan.storage }}", "10Gi")
    )
    error = only_error(fixture_catalog)
    assert error.location == (
        f"{FILE}: versions[1] 1.1.0, upgrade from 1.0.0: "
        "PersistentVolumeClaim/data: spec.resources.requests.storage"
    )
    assert 'plan small: spec.resources.requests.storage: "10Gi" → "1Gi"' in error.message
    assert 'plan large: spec.resources.requests.storage: "10Gi" → "5Gi"' in error.message
    assert "field can not be less than previous value" in error.message


def test_volume_claim_templates_sized_by_plan_are_refused(
    fixture_catalog: FixtureCatalog,
) -> None:
    fixture_catalog.replace_in_template(WEB, "kind: Deployment\n", "kind: StatefulSet\n")
    fixture_catalog.replace_in_template(
        WEB,
        "  replicas: {{ plan.replicas }}\n",
        "  replicas: {{ plan.replicas }}\n"
        "  serviceName: web\n"
        "  volumeClaimTemplates:\n"
        "    - metadata: {name: cache}\n"
        "      spec:\n"
        "        accessModes: [ReadWriteOnce]\n"
        "        resources: {requests: {storage: {{ plan.storage }}}}\n",
    )
    fixture_catalog.declare_data(("data", "volume"), ("web", "redis"))
    error = only_error(fixture_catalog)
    assert error.location == (
        f"{FILE}: versions[1] 1.1.0, plan changes: StatefulSet/web: spec.volumeClaimTemplates"
    )
    assert '.spec.resources.requests.storage: "1Gi" → "5Gi"' in error.message
    assert "updates to statefulset spec for fields other than" in error.message
    assert "standalone PersistentVolumeClaim" in error.message


@pytest.mark.parametrize("broken", ["static", "render"])
def test_no_comparison_without_renders_to_compare(
    fixture_catalog: FixtureCatalog, broken: str
) -> None:
    if broken == "static":
        fixture_catalog.edit(lambda d: d["parameters"]["properties"]["workers"].update(default=99))
    else:
        fixture_catalog.replace_in_template(WEB, "{{ params.greeting }}", "{{ params.nope }}")
    report = report_of(fixture_catalog)
    assert report.errors
    assert not any(
        "plan changes" in e.location or "upgrade from" in e.location for e in report.errors
    )
    assert report.plan_changes == (1 if broken == "render" else 0)
