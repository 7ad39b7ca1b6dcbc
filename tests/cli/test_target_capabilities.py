"""`cityctl target create --capability … --backup-destination …`: what a target declares runs
there (a closed set), and where its databases are backed up; unknown or bad values are refused
by the API (422) with the allowed values, and no credential is ever shown or stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, serve_platform

ACCESS_KEY = "AKIAEXAMPLEKEY"
SECRET_KEY = "wJalrXUtnFEMI-very-secret"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("capabilities"), with_worker=False)


@pytest.fixture(scope="module")
def operator(served: Platform) -> str:
    return served.issue_token(Role.OPERATOR, "operator")


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "backup.env"
    path.write_text(f"ACCESS_KEY_ID={ACCESS_KEY}\nSECRET_ACCESS_KEY={SECRET_KEY}\n")
    return path


def test_a_capability_and_object_store_are_shown(
    served: Platform, operator: str, credentials: Path
) -> None:
    created = served.json(
        "target", "create", "cnpg-on", "--kind", "gitops", "--path", "cnpg-on",
        "--capability", "cloudnative-pg", "--capability", "cloudnative-pg",
        "--backup-destination", "s3://city-backups/gent",
        "--backup-endpoint", "https://s3.example.be",
        "--backup-credentials-file", str(credentials), token=operator,
    )  # fmt: skip
    assert created["capabilities"] == ["cloudnative-pg"]
    assert created["config"]["backup_destination"] == "s3://city-backups/gent"
    assert created["config"]["backup_endpoint"] == "https://s3.example.be"
    assert created["config"]["backup_credentials_file"] == str(credentials)
    shown = served.json("target", "show", "cnpg-on", token=operator)
    assert shown["capabilities"] == ["cloudnative-pg"]
    table = served.ok("target", "list", token=operator).stdout
    assert "cloudnative-pg" in table
    assert SECRET_KEY not in table
    assert ACCESS_KEY not in table
    assert SECRET_KEY not in str(shown)


def test_without_the_option_a_target_declares_nothing(served: Platform, operator: str) -> None:
    created = served.json(
        "target", "create", "cnpg-off", "--kind", "gitops", "--path", "cnpg-off", token=operator
    )
    assert created["capabilities"] == []
    assert "backup_destination" not in created["config"]


def test_an_unknown_capability_is_refused_naming_the_allowed(
    served: Platform, operator: str
) -> None:
    result = served.run(
        "target", "create", "cnpg-bad", "--kind", "gitops", "--path", "cnpg-bad",
        "--capability", "zalando-postgres", token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert "zalando-postgres" in result.stderr
    assert "cloudnative-pg" in result.stderr
    assert served.run("target", "show", "cnpg-bad", token=operator).exit_code != 0


GOOD = ["--backup-destination", "s3://ok-bucket/x"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (["--backup-destination", "https://bucket/x"], "backup_destination"),
        (["--backup-destination", "s3://B_ad/x"], "backup_destination"),
        ([*GOOD, "--backup-endpoint", "http://s3"], "backup_endpoint"),
        (GOOD, "backup_credentials_file"),
        ([*GOOD, "--backup-credentials-file", "/nonexistent/b.env"], "backup_credentials_file"),
    ],
)
def test_a_bad_object_store_is_refused(
    served: Platform, operator: str, options: list[str], field: str
) -> None:
    result = served.run(
        "target", "create", "cnpg-store", "--kind", "gitops", "--path", "cnpg-store",
        "--capability", "cloudnative-pg", *options, token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert field in result.stderr
    assert served.run("target", "show", "cnpg-store", token=operator).exit_code != 0


def test_backups_need_the_capability(served: Platform, operator: str, credentials: Path) -> None:
    result = served.run(
        "target", "create", "cnpg-nocap", "--kind", "gitops", "--path", "cnpg-nocap",
        "--backup-destination", "s3://ok-bucket/x",
        "--backup-credentials-file", str(credentials), token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert "cloudnative-pg" in result.stderr


def test_a_credentials_file_without_the_keys_is_refused_without_quoting_it(
    served: Platform, operator: str, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.env"
    path.write_text("TOKEN=do-not-echo-me\n")
    result = served.run(
        "target", "create", "cnpg-keys", "--kind", "gitops", "--path", "cnpg-keys",
        "--capability", "cloudnative-pg", "--backup-destination", "s3://ok-bucket/x",
        "--backup-credentials-file", str(path), token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert "ACCESS_KEY_ID" in result.stderr
    assert "do-not-echo-me" not in result.stderr


def test_the_operator_namespace_and_apiserver_addresses_are_stored(
    served: Platform, operator: str
) -> None:
    """They shape the NetworkPolicies of the instances' CloudNativePG database pods."""
    created = served.json(
        "target", "create", "cnpg-net", "--kind", "gitops", "--path", "cnpg-net",
        "--capability", "cloudnative-pg", "--cnpg-operator-namespace", "postgres-operator",
        "--apiserver-cidr", "10.96.0.1/32", "--apiserver-cidr", "192.168.10.5/32",
        token=operator,
    )  # fmt: skip
    assert created["config"]["cnpg_operator_namespace"] == "postgres-operator"
    assert created["config"]["apiserver_cidrs"] == ["10.96.0.1/32", "192.168.10.5/32"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (["--cnpg-operator-namespace", "CNPG_System"], "cnpg_operator_namespace"),
        (["--apiserver-cidr", "kubernetes.default"], "apiserver_cidrs"),
    ],
)
def test_a_bad_network_config_is_refused(
    served: Platform, operator: str, options: list[str], field: str
) -> None:
    result = served.run(
        "target", "create", "cnpg-badnet", "--kind", "gitops", "--path", "cnpg-badnet",
        "--capability", "cloudnative-pg", *options, token=operator,
    )  # fmt: skip
    assert result.exit_code != 0
    assert field in result.stderr
    assert served.run("target", "show", "cnpg-badnet", token=operator).exit_code != 0
