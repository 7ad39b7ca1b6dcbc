"""The README's Quickstart works exactly as written.

Every fenced ``sh`` block under "## Quickstart" is read in order. ``cityctl …`` lines run
through CliRunner against a real API on loopback; ``export VAR=$(cityctl …)`` runs the
command and keeps its stdout, as the shell would. The variables the quickstart gets from
outside cityctl (``CITYCTL_SERVER`` from `make run`, ``OPERATOR_TOKEN`` from
`controlplane bootstrap`) are provided by the test: the server's URL, and a token minted
the way `controlplane bootstrap` mints it. Any other line (``source``, comments) is not a
cityctl command and is skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv

README = Path(__file__).resolve().parents[2] / "README.md"
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def quickstart_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 3, "one block per user group: operator, municipality, finance"
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # trailing shell comments
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_readme_quickstart_runs_as_written(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quickstart runs in the repository, which ships the municipalities file.
    repo = tmp_path / "main"
    data = repo / "controlplane" / "tenants" / "data"
    data.mkdir(parents=True)
    municipalities_csv(data, ("Gent", "Aalst", "Maaseik", "De Panne")).rename(
        data / "flemish-municipalities.csv"
    )
    monkeypatch.chdir(repo)

    given = {
        "CITYCTL_SERVER": platform.url,
        "OPERATOR_TOKEN": platform.issue_token(Role.OPERATOR, "bootstrap-operator"),
    }
    variables = dict(given)
    ran: list[str] = []

    def expand(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in variables, f"the quickstart uses ${name} before setting it"
            return variables[name]

        return _VAR.sub(value, text)

    def cityctl(command: str) -> str:
        argv = shlex.split(expand(command))
        assert argv[0] == "cityctl", command
        result = platform.run(*argv[1:], CITYCTL_SERVER=variables["CITYCTL_SERVER"])
        assert result.exit_code == 0, (command, result.exit_code, result.stderr)
        ran.append(command)
        return result.stdout

    for line in quickstart_lines():
        export = _EXPORT.match(line)
        if export:
            name, value = export.groups()
            if name in given:
                continue  # comes from outside cityctl (make run, controlplane bootstrap)
            inner = re.fullmatch(r"\$\((cityctl .*)\)", value)
            variables[name] = cityctl(inner.group(1)).strip() if inner else expand(value)
        elif line.startswith("cityctl "):
            cityctl(line)

    # The three journeys really ran, and ended where the quickstart says they do.
    assert sum(line.startswith("cityctl login") for line in ran) == 3
    assert variables["GENT_TOKEN"].startswith("cp_")
    assert variables["FINANCE_TOKEN"].startswith("cp_")
    gent_history = platform.run(
        "instance",
        "history",
        "login",
        token=variables["GENT_TOKEN"],
        CITYCTL_CONFIG=str(tmp_path / "other.json"),
    )
    assert gent_history.exit_code == 4  # deleted at the end of the municipality's block
    # Finance's exports landed in the folder the quickstart ran in.
    assert len(list(repo.glob("statements-*.xlsx"))) == 1
    assert len(list(repo.glob("statements-*-be.csv"))) == 1
    contexts = platform.run("context", "list", "-o", "json")
    assert '"finance"' in contexts.stdout
    assert '"gent"' in contexts.stdout
