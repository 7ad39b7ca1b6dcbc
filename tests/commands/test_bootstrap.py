"""`controlplane bootstrap`: the first operator token once, a second only with --force."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controlplane.commands import app


def _env(tmp_path: Path) -> dict[str, str | None]:
    # Only the data directory: bootstrap migrates its own embedded SQLite file there.
    return {"CONTROLPLANE_DATA_DIR": str(tmp_path), "CONTROLPLANE_DATABASE_URL": None}


def test_a_second_operator_token_needs_force(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["bootstrap"], env=_env(tmp_path))
    assert first.exit_code == 0, first.output
    token = first.stdout.strip().splitlines()[-1]

    refused = runner.invoke(app, ["bootstrap"], env=_env(tmp_path))
    assert refused.exit_code == 1
    assert "already exist" in refused.output
    assert "bootstrap-operator" in refused.output
    assert "--force" in refused.output
    assert token not in refused.output

    forced = runner.invoke(app, ["bootstrap", "--force", "--name", "second"], env=_env(tmp_path))
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.strip().splitlines()[-1] != token
