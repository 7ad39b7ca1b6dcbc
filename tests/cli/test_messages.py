"""Validation messages in words, one length limit per name (issue 14).

Through cityctl against a real API: a bad name or parameter is explained in words (never a
regex), and each name's limit is the same at the API (accepted at the limit, refused just
above), in the message, in the request model and in the database column.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from controlplane.api import schemas
from controlplane.auth.models import Role
from controlplane.catalog.loading import service_files
from controlplane.provisioning import admission
from controlplane.provisioning.models import Instance
from controlplane.tenants import services as tenant_services
from controlplane.tenants.models import Tenant
from controlplane.tenants.names import (
    HOSTNAME_MAX,
    INSTANCE_NAME_MAX,
    TARGET_NAME_MAX,
    TENANT_SLUG_MAX,
    TOKEN_NAME_MAX,
)
from tests.cli.conftest import Platform, municipalities_csv

USAGE = 2
#: What gives a regular expression away.
REGEX = re.compile(r"\^|\$'|\[a-z|\\[.sd]|\{\d+,\d*\}|should match pattern|does not match")


@pytest.fixture(scope="module")
def operator(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    token = platform.issue_token(Role.OPERATOR, "messages-operator")
    platform.ok("catalog", "publish", token=token)
    csv_file = municipalities_csv(tmp_path_factory.mktemp("csv"), ("Gent",))
    platform.ok("tenant", "import", str(csv_file), token=token)
    return token


def _refused(platform: Platform, *args: str, token: str) -> str:
    result = platform.run(*args, token=token)
    assert result.exit_code == USAGE, (result.stdout, result.stderr)
    assert not REGEX.search(result.stderr), result.stderr
    return result.stderr


def _nis() -> str:
    return f"9{uuid.uuid4().int % 10000:04d}"


def test_a_bad_slug_is_explained_in_words(platform: Platform, operator: str) -> None:
    stderr = _refused(
        platform, "tenant", "create", "--name", "Foo", "--nis-code", _nis(), "--slug", "Foo_Bar",
        token=operator,
    )  # fmt: skip
    assert "lower-case letters, digits and hyphens" in stderr


def test_a_bad_nis_code_and_email_are_explained_in_words(platform: Platform, operator: str) -> None:
    stderr = _refused(
        platform, "tenant", "create", "--name", "Foo", "--nis-code", "12ab", token=operator
    )
    assert "five digits" in stderr


def test_a_bad_parameter_is_explained_in_words(platform: Platform, operator: str) -> None:
    stderr = _refused(
        platform, "instance", "create", "kc", "--tenant", "gent", "--service", "keycloak",
        "--plan", "small", "--set", "admin_username=Foo", token=operator,
    )  # fmt: skip
    assert "3 to 32 characters" in stderr
    assert "starting with a letter" in stderr


def test_a_hostname_with_a_long_label_is_explained_in_words(
    platform: Platform, operator: str
) -> None:
    stderr = _refused(
        platform, "instance", "create", "web", "--tenant", "gent", "--service", "matomo",
        "--plan", "small", "--set", f"hostname={'a' * 64}.gent.be", token=operator,
    )  # fmt: skip
    assert "1 to 63 letters" in stderr


def test_every_shipped_parameter_pattern_is_described() -> None:
    import yaml

    def undescribed(node: object) -> list[object]:
        if isinstance(node, dict):
            own = [node] if isinstance(node.get("pattern"), str) else []
            own = [n for n in own if not n.get("x-pattern-description")]
            return own + [n for value in node.values() for n in undescribed(value)]
        if isinstance(node, list):
            return [n for value in node for n in undescribed(value)]
        return []

    for path in service_files(Path("catalog")):
        assert undescribed(yaml.safe_load(path.read_text())["parameters"]) == [], path


def test_one_limit_per_name_in_models_columns_and_checks() -> None:
    assert Tenant.__table__.c.slug.type.length == TENANT_SLUG_MAX  # type: ignore[attr-defined]
    assert Instance.__table__.c.name.type.length == INSTANCE_NAME_MAX  # type: ignore[attr-defined]
    assert tenant_services.SLUG_MAX == TENANT_SLUG_MAX
    assert admission.NAME_MAX == INSTANCE_NAME_MAX

    def limit(model: type, field: str) -> int | None:
        props = model.model_json_schema()["properties"][field]  # type: ignore[attr-defined]
        for option in props.get("anyOf", [props]):
            if "maxLength" in option:
                return int(option["maxLength"])
        return None

    assert limit(schemas.TenantCreate, "slug") == TENANT_SLUG_MAX
    assert limit(schemas.TokenCreate, "tenant") == TENANT_SLUG_MAX
    assert limit(schemas.TokenCreate, "name") == TOKEN_NAME_MAX
    assert limit(schemas.InstanceCreate, "name") == INSTANCE_NAME_MAX
    assert limit(schemas.TargetCreate, "name") == TARGET_NAME_MAX


def test_tenant_slug_limit(platform: Platform, operator: str) -> None:
    over = "s" + uuid.uuid4().hex[:8] + "x" * (TENANT_SLUG_MAX - 8)
    assert len(over) == TENANT_SLUG_MAX + 1
    stderr = _refused(
        platform, "tenant", "create", "--name", "Over", "--nis-code", _nis(), "--slug", over,
        token=operator,
    )  # fmt: skip
    assert f"at most {TENANT_SLUG_MAX} characters" in stderr
    platform.ok(
        "tenant", "create", "--name", "At", "--nis-code", _nis(), "--slug", over[:-1],
        token=operator,
    )  # fmt: skip


def test_instance_name_limit(platform: Platform, operator: str) -> None:
    over = "i" + uuid.uuid4().hex[:8] + "x" * (INSTANCE_NAME_MAX - 8)
    stderr = _refused(
        platform, "instance", "create", over, "--tenant", "gent", "--service", "matomo",
        "--plan", "small", token=operator,
    )  # fmt: skip
    assert f"at most {INSTANCE_NAME_MAX} characters" in stderr
    platform.ok(
        "instance", "create", over[:-1], "--tenant", "gent", "--service", "matomo",
        "--plan", "small", token=operator,
    )  # fmt: skip


def test_token_name_limit(platform: Platform, operator: str) -> None:
    over = "t" * (TOKEN_NAME_MAX + 1)
    stderr = _refused(
        platform, "token", "create", "--name", over, "--role", "tenant-viewer", "--tenant",
        "gent", token=operator,
    )  # fmt: skip
    assert f"at most {TOKEN_NAME_MAX} characters" in stderr
    platform.ok(
        "token", "create", "--name", over[:-1], "--role", "tenant-viewer", "--tenant", "gent",
        token=operator,
    )  # fmt: skip


def test_target_name_limit(platform: Platform, operator: str) -> None:
    folder = f"messages-{uuid.uuid4().hex[:8]}"
    over = "g" + uuid.uuid4().hex[:8] + "x" * (TARGET_NAME_MAX - 8)
    stderr = _refused(
        platform, "target", "create", over, "--kind", "gitops", "--path", folder,
        token=operator,
    )  # fmt: skip
    assert f"at most {TARGET_NAME_MAX} characters" in stderr
    platform.ok(
        "target", "create", over[:-1], "--kind", "gitops", "--path", folder,
        token=operator,
    )  # fmt: skip


def test_hostname_limit(platform: Platform, operator: str) -> None:
    label = "a" * 63
    at_limit = ".".join([label, label, label, "b" * 58, "be"])
    assert len(at_limit) == HOSTNAME_MAX
    stderr = _refused(
        platform, "instance", "create", "long", "--tenant", "gent", "--service", "matomo",
        "--plan", "small", "--set", f"hostname=x{at_limit}", token=operator,
    )  # fmt: skip
    assert str(HOSTNAME_MAX) in stderr


def test_the_cli_help_states_the_same_slug_limit() -> None:
    # cityctl speaks HTTP only, so it cannot import the constant: its help spells it out.
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["tenant", "create", "--help"], env={"COLUMNS": "200"})
    assert f"1 to {TENANT_SLUG_MAX} lower-case letters" in result.output
