"""`cityctl target grant | revoke | show`: operators decide which tenants use which targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.auth.models import Role
from controlplane.db.sessions import open_session
from tests.cli.conftest import Platform, serve_platform
from tests.factories import make_tenant


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("targets"), with_worker=False)


@pytest.fixture(scope="module")
def operator(served: Platform) -> str:
    for session in open_session(served.engine):
        make_tenant(session, "gent", nis_code="44021")
        session.commit()
    return served.issue_token(Role.OPERATOR, "operator")


def test_grant_show_revoke(served: Platform, operator: str) -> None:
    created = served.json(
        "target", "create", "prod-gent", "--kind", "gitops", "--path", "prod", token=operator
    )
    assert created["config"]["path"] == str((served.data_dir / "gitops" / "prod").resolve())

    granted = served.run("target", "grant", "prod-gent", "gent", token=operator)
    assert granted.exit_code == 0, granted.stderr
    assert "now has" in granted.stderr
    again = served.json("target", "grant", "prod-gent", "gent", token=operator)
    assert again["tenant"] == "gent"
    assert served.json("target", "show", "prod-gent", token=operator)["granted_to"] == ["gent"]

    revoked = served.json("target", "revoke", "prod-gent", "gent", "--yes", token=operator)
    assert revoked == {"target": "prod-gent", "tenant": "gent", "granted": False}
    assert served.json("target", "show", "prod-gent", token=operator)["granted_to"] == []


def test_create_refuses_a_path_outside_the_root(served: Platform, operator: str) -> None:
    result = served.run(
        "target", "create", "cron", "--kind", "gitops", "--path", "/etc/cron.d", token=operator
    )
    assert result.exit_code != 0
    assert "config.path" in result.stderr
    assert "CONTROLPLANE_GITOPS_ROOT" in result.stderr


def test_create_refuses_a_file_that_is_not_a_kubeconfig(
    served: Platform, operator: str, tmp_path: Path
) -> None:
    bogus = tmp_path / "kubeconfig"
    bogus.write_text("password: hunter2\n")
    result = served.run(
        "target", "create", "k", "--kind", "kubernetes", "--kubeconfig", str(bogus), token=operator
    )
    assert result.exit_code != 0
    assert "config.kubeconfig" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
