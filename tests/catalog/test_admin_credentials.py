"""Every declared ``admin_credentials`` names a Secret and keys every version renders."""

from __future__ import annotations

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.rendering.catalog_checks import stack_check

CATALOG = load_catalog()
RELEASES = [r for r in CATALOG.releases() if r.credentials() is not None]


def test_keycloak_and_nextcloud_declare_them() -> None:
    assert {r.name for r in RELEASES} >= {"keycloak", "nextcloud"}


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: f"{r.name}-{r.version.version}")
def test_declared_secret_and_keys_are_rendered(release) -> None:  # type: ignore[no-untyped-def]
    declared = release.credentials()
    assert declared is not None
    plan = release.plans[0]
    objects = stack_check("1.34")(release, plan, {})
    secret = next(
        (o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == declared.secret),
        None,
    )
    assert secret is not None, f"no Secret {declared.secret}"
    keys = {*secret.get("stringData", {}), *secret.get("data", {})}
    missing = {declared.username_key, declared.password_key} - keys
    assert not missing, missing


def _render(release, rotation: int):  # type: ignore[no-untyped-def]
    from controlplane.rendering.catalog_checks import CHECK_TENANT, OFFLINE_SECRET
    from controlplane.rendering.renderer import InstanceRef, Renderer

    renderer = Renderer(server_secret=OFFLINE_SECRET, kubernetes_version="1.34")
    return renderer.render(
        release,
        plan=release.plans[0].name,
        tenant=CHECK_TENANT,
        instance=InstanceRef(name="login", id="0b7c0d1e", credentials_rotation=rotation),
        parameters={},
    )


def test_rotation_zero_renders_as_before_and_one_changes_only_the_password() -> None:
    release = CATALOG.release("keycloak")
    undeclared = release.model_copy(update={"admin_credentials": None})
    assert _render(release, 0).digest == _render(undeclared, 0).digest
    assert _render(release, 0).digest == _render(undeclared, 5).digest

    before, after = _render(release, 0), _render(release, 1)
    assert before.digest != after.digest
    changed = [
        (a["kind"], a["metadata"]["name"], key)
        for a, b in zip(before.objects, after.objects, strict=True)
        if a != b
        for key in sorted({*a.get("stringData", {})} | {*b.get("stringData", {})})
        if a.get("stringData", {}).get(key) != b.get("stringData", {}).get(key)
    ]
    assert changed == [("Secret", "keycloak", "KC_BOOTSTRAP_ADMIN_PASSWORD")]
    differing = [
        (a["kind"], a["metadata"]["name"])
        for a, b in zip(before.objects, after.objects, strict=True)
        if a != b
    ]
    # Besides the Secret, only the pods that read it: their config digest rolls them
    # (docs/rendering.md), so Keycloak starts with the new bootstrap password.
    assert differing == [("Secret", "keycloak"), ("Deployment", "keycloak")]
    old_pod, new_pod = (
        next(o for o in r.objects if o["kind"] == "Deployment")["spec"]["template"]
        for r in (before, after)
    )
    digest = "city-platform.be/config-digest"
    assert old_pod["metadata"]["annotations"][digest] != new_pod["metadata"]["annotations"][digest]
    del old_pod["metadata"]["annotations"][digest], new_pod["metadata"]["annotations"][digest]
    assert old_pod == new_pod
