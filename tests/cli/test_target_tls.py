"""`cityctl target create --tls-cluster-issuer`: a target's Ingresses get certificates from a
cert-manager ClusterIssuer; the issuer is shown with the target, a bad name is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, serve_platform


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("tls"), with_worker=False)


@pytest.fixture(scope="module")
def operator(served: Platform) -> str:
    return served.issue_token(Role.OPERATOR, "operator")


def test_create_with_a_cluster_issuer_shows_it(served: Platform, operator: str) -> None:
    created = served.json(
        "target", "create", "tls-on", "--kind", "gitops", "--path", "tls-on",
        "--tls-cluster-issuer", "letsencrypt-prod", token=operator,
    )  # fmt: skip
    issuer = {"kind": "ClusterIssuer", "name": "letsencrypt-prod"}
    assert created["config"]["tls_issuer"] == issuer
    assert served.json("target", "show", "tls-on", token=operator)["config"]["tls_issuer"] == issuer
    listed = {t["name"]: t for t in served.json("target", "list", token=operator)}
    assert listed["tls-on"]["config"]["tls_issuer"] == issuer
    table = served.ok("target", "list", token=operator)
    assert "letsencrypt-prod" in table.stdout


def test_without_the_option_there_is_no_issuer(served: Platform, operator: str) -> None:
    created = served.json(
        "target", "create", "tls-off", "--kind", "gitops", "--path", "tls-off", token=operator
    )
    assert "tls_issuer" not in created["config"]


@pytest.mark.parametrize("bad", ["Lets_Encrypt", "-le", "le.", "a" * 254])
def test_a_bad_issuer_name_is_refused(served: Platform, operator: str, bad: str) -> None:
    result = served.run(
        "target", "create", "tls-bad", "--kind", "gitops", "--path", "tls-bad",
        "--tls-cluster-issuer", bad, token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert "tls_issuer" in result.stderr
    assert served.run("target", "show", "tls-bad", token=operator).exit_code != 0
