"""`cityctl catalog publish --correct SERVICE@VERSION --reason TEXT` (issue 19), against a
real API on loopback: a published release whose objects changed is refused with a hint
naming --correct, replaced with it (operators, with a reason), never by a tenant role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.commands.audit import describe
from cli.errors import ExitCode
from controlplane.auth.models import Role
from tests.cli.billing_world import new_token
from tests.cli.conftest import Platform, municipalities_csv, serve_platform
from tests.factories import demo_release


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from serve_platform(tmp_path_factory.mktemp("correct"), with_worker=False)


def _write(path: Path, template_text: str) -> Path:
    release = demo_release("9.0.0", template_text=template_text)
    path.write_text(json.dumps(release.model_dump(mode="json")))
    return path


def test_publish_correct(platform: Platform, tmp_path: Path) -> None:
    operator = platform.issue_token(Role.OPERATOR, "correct-operator")
    towns = municipalities_csv(tmp_path, ("Gent",))
    platform.ok("tenant", "import", str(towns), token=operator)
    admin = new_token(platform, operator, "gent-admin", "tenant-admin", "gent")
    first = _write(tmp_path / "first.json", "kind: ConfigMap\n")
    fixed = _write(tmp_path / "fixed.json", "kind: Secret\n")
    platform.ok("catalog", "publish", "--file", str(first), token=operator)

    refused = platform.run("catalog", "publish", "--file", str(fixed), token=operator)
    assert refused.exit_code == ExitCode.CONFLICT
    assert "--correct demo@9.0.0" in refused.stderr

    correct = ("catalog", "publish", "--file", str(fixed), "--correct", "demo@9.0.0")
    no_reason = platform.run(*correct, token=operator)
    assert no_reason.exit_code == ExitCode.USAGE
    assert "--reason" in no_reason.stderr
    bad = platform.run(
        "catalog",
        "publish",
        "--file",
        str(fixed),
        "--correct",
        "demo",
        "--reason",
        "x",
        token=operator,
    )
    assert bad.exit_code == ExitCode.USAGE
    assert platform.run(*correct, "--reason", "wrong uid", token=admin).exit_code == ExitCode.AUTH

    done = platform.run(*correct, "--reason", "wrong uid", "-o", "json", token=operator)
    assert done.exit_code == 0, done.stderr
    (item,) = json.loads(done.stdout)["published"]
    assert item["outcome"] == "corrected"
    assert item["previous_digest"] != item["digest"]
    assert "1 corrected (0 instance(s) re-render)" in done.stderr
    events = platform.json("audit", "list", "--action", "catalog.correct", token=operator)
    assert [e["details"]["reason"] for e in events] == ["wrong uid"]


def test_the_audit_table_says_why_an_instance_changed() -> None:
    event = {
        "action": "instance.release_corrected",
        "details": {"version": "26.0.7", "reason": "wrong uid", "generation": 3},
    }
    assert describe(event) == "published release of 26.0.7 corrected: wrong uid"
