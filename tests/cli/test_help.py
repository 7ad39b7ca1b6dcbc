"""What cityctl promises before it talks to any server: help, examples, exit codes, --set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.commands._shared import parse_sets
from cli.errors import CliError, ExitCode
from cli.main import app


def _commands() -> Iterator[tuple[str, ...]]:
    root = typer.main.get_command(app)

    # typer vendors its own click, so groups are recognised by their sub-commands.
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path

    yield from walk(root, ())


COMMANDS = sorted(_commands())


def test_every_noun_and_verb_of_the_issue_exists() -> None:
    wanted = (
        {("catalog", verb) for verb in ("list", "show", "publish", "deprecate", "retire")}
        | {("tenant", verb) for verb in ("list", "show", "create", "update", "import")}
        | {
            ("instance", verb)
            for verb in (
                "list",
                "show",
                "create",
                "update",
                "upgrade",
                "rollback",
                "history",
                "delete",
            )
        }
        | {("target", "list"), ("target", "create"), ("audit", "list")}
        | {("token", verb) for verb in ("create", "list", "revoke")}
        | {("login",), ("whoami",), ("context", "list"), ("context", "use")}
    )
    assert wanted <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: cityctl " + " ".join(path) in result.stdout


def test_root_help_documents_exit_codes_and_completion() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Exit codes: 0 ok, 1 operation failed, 2 usage" in result.stdout
    assert "--install-completion" in result.stdout


def test_set_parses_json_scalars_and_nests_dotted_keys() -> None:
    assert parse_sets(
        ["a=1", "b=true", "c=text", "d.e=x", "d.f=[1, 2]", "g=", 'h="7"', "i=a=b"]
    ) == {
        "a": 1,
        "b": True,
        "c": "text",
        "d": {"e": "x", "f": [1, 2]},
        "g": "",
        "h": "7",
        "i": "a=b",
    }


@pytest.mark.parametrize("item", ["novalue", "=1", "a..b=1", ".a=1", "a.=1"])
def test_set_refuses_what_is_not_key_value(item: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_sets([item])
    assert caught.value.exit_code is ExitCode.USAGE
    assert caught.value.hint


def test_set_refuses_a_value_and_nested_keys_for_one_name() -> None:
    with pytest.raises(CliError) as caught:
        parse_sets(["a=1", "a.b=2"])
    assert caught.value.exit_code is ExitCode.USAGE
