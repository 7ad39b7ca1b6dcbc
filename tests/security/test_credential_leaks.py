"""Generated credentials never reach an error message (which the reconciler stores in the
instance's status and the API returns).

Kubernetes schema errors and policy errors quote the offending value; when a template puts
a ``secrets.*`` value in the wrong place, that value is the credential itself.
"""

from __future__ import annotations

import pytest

from controlplane.catalog.models import ServiceRelease
from controlplane.errors import InvalidInput
from controlplane.rendering import derive_secret
from tests.rendering.conftest import (  # noqa: F401 (fixtures)
    INSTANCE,
    SERVER_SECRET,
    RenderFn,
    edit,
    fixture_catalog,
    release,
    render,
    renderer,
)

WEB = "10-web.yaml.j2"
CONFIG = "00-config.yaml.j2"
CREDENTIAL = derive_secret(SERVER_SECRET, INSTANCE.id, "db_password")


def _everything(exc: InvalidInput) -> str:
    return " ".join(
        [exc.detail, exc.hint or "", *(f"{e.location} {e.message}" for e in exc.errors)]
    )


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        # A schema error ("… is not of type integer") quotes the value.
        (WEB, "  replicas: {{ plan.replicas }}", "  replicas: {{ secrets.db_password }}"),
        # A credential used as a key lands in the error's location.
        (CONFIG, "{{ params.welcome_text }}", "{ {{ secrets.db_password }}: 1 }"),
        # The image policy quotes the image reference.
        (WEB, "{{ images.web }}", "{{ secrets.db_password }}"),
    ],
    ids=["schema-value", "mapping-key", "image-policy"],
)
def test_render_errors_never_quote_a_credential(
    render: RenderFn,  # noqa: F811
    release: ServiceRelease,  # noqa: F811
    file: str,
    old: str,
    new: str,
) -> None:
    bad = edit(release, file, old, new)
    with pytest.raises(InvalidInput) as caught:
        render(bad)
    assert caught.value.errors, "the render must be refused with located errors"
    assert CREDENTIAL not in _everything(caught.value)
    assert CREDENTIAL not in str(caught.value)


def test_a_non_integer_replica_count_is_a_located_error_not_a_crash(
    render: RenderFn,  # noqa: F811
    release: ServiceRelease,  # noqa: F811
) -> None:
    # The quota derivation used int(replicas) and raised ValueError (a 500 in admission,
    # an unhandled error in the reconciler) before the schema check could name the field.
    bad = edit(release, WEB, "  replicas: {{ plan.replicas }}", '  replicas: "eighty"')
    with pytest.raises(InvalidInput) as caught:
        render(bad)
    assert any(e.location == "Deployment/web: spec.replicas" for e in caught.value.errors)
