"""The README's Quickstart works exactly as written.

Every fenced ``sh`` block under "## Quickstart" is read in order. ``cityctl …`` lines run
through CliRunner against a real API on loopback; ``export VAR=$(cityctl …)`` runs the
command and keeps its stdout, as the shell would. The variables the quickstart gets from
outside cityctl (``CITYCTL_SERVER`` from `make run`, ``OPERATOR_TOKEN`` from
`controlplane bootstrap`) are provided by the test: the server's URL, and a token minted
the way `controlplane bootstrap` mints it, and the cluster of `make cluster` is the shared
test cluster (its kubeconfig linked to ``.cluster/kubeconfig`` where the quickstart runs). Any
other line (``source``, comments) is not a cityctl command and is skipped.

The municipality's journey ends with a URL and credentials in hand: the test checks the URL
printed and that the credentials are the ones in the Secret on the cluster.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path

import pytest

from controlplane.auth.models import Role
from tests.cli.conftest import Platform, municipalities_csv
from tests.cluster.fixtures import Cluster

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
    platform: Platform, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quickstart runs in the repository, which ships the municipalities file.
    repo = tmp_path / "main"
    data = repo / "controlplane" / "tenants" / "data"
    data.mkdir(parents=True)
    municipalities_csv(data, ("Gent", "Aalst", "Maaseik", "De Panne")).rename(
        data / "flemish-municipalities.csv"
    )
    (repo / ".cluster").mkdir()
    (repo / ".cluster" / "kubeconfig").symlink_to(cluster.kubeconfig)
    monkeypatch.chdir(repo)
    # Gent's stack lives in gent--login on the shared cluster: start from a clean slate.
    cluster.kubectl("delete", "namespace", "gent--login", "--ignore-not-found", "--wait=true")

    given = {
        "CITYCTL_SERVER": platform.url,
        "OPERATOR_TOKEN": platform.issue_token(Role.OPERATOR, "bootstrap-operator"),
    }
    variables = dict(given)
    ran: list[str] = []
    printed: dict[str, tuple[str, str]] = {}  # command → (stdout, stderr)

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
        printed[command] = (result.stdout, result.stderr)
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

    try:
        # The three journeys really ran, and ended where the quickstart says they do.
        assert sum(line.startswith("cityctl login") for line in ran) == 3
        assert variables["GENT_TOKEN"].startswith("cp_")
        assert variables["FINANCE_TOKEN"].startswith("cp_")
        trial = platform.run(
            "instance",
            "history",
            "trial",
            token=variables["GENT_TOKEN"],
            CITYCTL_CONFIG=str(tmp_path / "other.json"),
        )
        assert trial.exit_code == 4  # the trial on the GitOps target was purged
        retained = printed["cityctl instance delete trial --yes --wait"]
        assert "Retained" in retained[0] + retained[1]
        created = printed[
            next(c for c in ran if c.startswith("cityctl instance create trial") and "--wait" in c)
        ]
        assert "Waiting for Committed" in created[1]

        # The municipality holds a URL and credentials, and they are true.
        err = printed["cityctl instance show login"][1]
        assert "URLs (the instance is Ready" in err
        assert "https://login.gent.apps.city-platform.local/admin/" in err
        shown = platform.json("instance", "show", "login", token=variables["GENT_TOKEN"])
        assert shown["status"]["phase"] == "Ready"
        assert shown["version"] == "26.0.7"
        assert shown["plan"] == "small"
        credentials = printed["cityctl instance credentials login"][0]
        live = cluster.get("Secret", "keycloak", "gent--login")
        user = base64.b64decode(live["data"]["KC_BOOTSTRAP_ADMIN_USERNAME"]).decode()
        password = base64.b64decode(live["data"]["KC_BOOTSTRAP_ADMIN_PASSWORD"]).decode()
        assert user == "gentadmin"
        assert user in credentials
        assert password in credentials
    finally:
        cluster.kubectl("delete", "namespace", "gent--login", "--ignore-not-found", "--wait=false")
    # Finance's exports landed in the folder the quickstart ran in.
    assert len(list(repo.glob("statements-*.xlsx"))) == 1
    assert len(list(repo.glob("statements-*-be-*.csv"))) == 1
    contexts = platform.run("context", "list", "-o", "json")
    assert '"finance"' in contexts.stdout
    assert '"gent"' in contexts.stdout
