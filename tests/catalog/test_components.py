"""Shared components (``templates/_components/``): typed inputs, frozen into each release,
errors that name the file and line (issue 15 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.catalog.errors import CatalogInvalid
from controlplane.catalog.loading import load_catalog
from controlplane.catalog.validation import check_catalog
from controlplane.rendering.catalog_checks import stack_check, update_check
from tests.catalog.fixture_catalog import FixtureCatalog

DATA = "demo/2/20-data.yaml.j2"
CHECK = stack_check("1.33")

CLAIM = """{#- component: claim
inputs:
  name: {type: string, pattern: "^[a-z][a-z0-9-]*$"}
  size: {type: string, default: "1Gi"}
required: [name]
-#}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ inputs.name }}
  labels:
    app.kubernetes.io/component: web
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: {{ inputs.size }}
"""


def _with_component(fc: FixtureCatalog, component: str, call: str) -> None:
    folder = fc.templates_dir / "_components"
    folder.mkdir(exist_ok=True)
    (folder / "claim.yaml.j2").write_text(component)
    fc.template(DATA).write_text(call + "\n")


def _errors(fc: FixtureCatalog) -> list[str]:
    report = check_catalog(
        fc.catalog_dir, fc.templates_dir, check_stack=CHECK, check_update=update_check
    )
    return [f"{e.location}: {e.message}" for e in report.errors]


def _objects(fc: FixtureCatalog) -> list[dict]:  # type: ignore[type-arg]
    release = load_catalog(fc.catalog_dir, fc.templates_dir).release("demo", "1.1.0")
    return [dict(o) for o in CHECK(release, release.plans[0], {})]


def test_a_component_renders_with_its_inputs_and_defaults(fixture_catalog: FixtureCatalog) -> None:
    _with_component(fixture_catalog, CLAIM, '{{ component("claim", name="data") }}')
    assert _errors(fixture_catalog) == []
    claim = next(o for o in _objects(fixture_catalog) if o["kind"] == "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_the_release_carries_the_components_it_uses(fixture_catalog: FixtureCatalog) -> None:
    _with_component(fixture_catalog, CLAIM, '{{ component("claim", name="data") }}')
    release = load_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir).release(
        "demo", "1.1.0"
    )
    assert release.bundle.files["_components/claim.yaml.j2"] == CLAIM
    # Changing the shared component later does not change what this release renders.
    before = [dict(o) for o in CHECK(release, release.plans[0], {})]
    (fixture_catalog.templates_dir / "_components" / "claim.yaml.j2").write_text(
        CLAIM.replace('default: "1Gi"', 'default: "9Gi"')
    )
    assert [dict(o) for o in CHECK(release, release.plans[0], {})] == before


def test_an_unknown_component_names_the_template(fixture_catalog: FixtureCatalog) -> None:
    _with_component(fixture_catalog, CLAIM, '{{ component("clam", name="data") }}')
    with pytest.raises(CatalogInvalid) as caught:
        load_catalog(fixture_catalog.catalog_dir, fixture_catalog.templates_dir).release(
            "demo", "1.1.0"
        )
    [error] = caught.value.errors or []
    assert error.location == f"templates/{DATA}"
    assert "no component 'clam' in templates/_components/ (there are: claim)" in error.message


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ('{{ component("claim") }}', '"name" is a required property'),
        ('{{ component("claim", name="data", sise="2Gi") }}', "sise"),
        ('{{ component("claim", name=3) }}', "3 is not of type"),
    ],
)
def test_inputs_are_checked_against_the_declaration(
    fixture_catalog: FixtureCatalog, call: str, words: str
) -> None:
    _with_component(fixture_catalog, CLAIM, call)
    found = _errors(fixture_catalog)
    assert found, "refused"
    assert all(f"templates/{DATA}:1: component 'claim' refuses these inputs" in e for e in found), (
        found
    )
    assert words in found[0]


def test_an_input_the_component_never_reads_is_refused(fixture_catalog: FixtureCatalog) -> None:
    unused = CLAIM.replace(
        "required: [name]", "  owner: {type: string, default: x}\nrequired: [name]"
    )
    _with_component(fixture_catalog, unused, '{{ component("claim", name="data") }}')
    found = _errors(fixture_catalog)
    assert found
    assert (
        "templates/_components/claim.yaml.j2:1: input 'owner' is declared but never used"
        in found[0]
    )


def test_a_value_inside_a_component_is_still_one_value(fixture_catalog: FixtureCatalog) -> None:
    # The component's text is inserted as template output, but the inputs it writes go
    # through the same one-JSON-value rule as everything else.
    _with_component(
        fixture_catalog,
        CLAIM,
        '{{ component("claim", name="data", size="1Gi\\n  extra: injected") }}',
    )
    claim = next(o for o in _objects(fixture_catalog) if o["kind"] == "PersistentVolumeClaim")
    assert "extra" not in claim["spec"]["resources"]["requests"]


def test_the_shipped_database_is_one_component() -> None:
    shipped = Path(__file__).resolve().parents[2] / "templates"
    users = sorted(
        p.parent.name
        for p in shipped.glob("*/*.yaml.j2")
        if 'component("postgres"' in p.read_text()
    )
    assert len(users) >= 7, users
    assert not any(
        "kind: StatefulSet" in p.read_text() and "postgres" in p.name
        for p in shipped.glob("*/*.j2")
        if p.parent.name != "_components"
    )
