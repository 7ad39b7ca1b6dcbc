"""Hints name only commands and options that exist (issue 14).

Every string literal (and every literal part of an f-string) in controlplane/ and cli/
that mentions ``cityctl …`` or ``controlplane …`` is parsed as a command line and checked
against the real Typer apps: the sub-command path exists and each ``--option`` is one of
that command's parameters (or a global option of the program).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.main import app as cityctl_app
from controlplane.commands import app as controlplane_app

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS: dict[str, Any] = {
    "cityctl": typer.main.get_command(cityctl_app),
    "controlplane": typer.main.get_command(controlplane_app),
}
#: A program name followed by a command line; it ends at a backtick, quote or line end.
MENTION = re.compile(r"(?<![\w./-])(cityctl|controlplane) ([^`'\"\n]*)")
#: Where a sentence goes on after the command line (", then …", "; …", ". Then").
PROSE_END = re.compile(r"(, |; |\. | \(| — | or `| and `|\.$|:$|\)$)")
PLACEHOLDER = "\x00"


@dataclass(frozen=True)
class Mention:
    where: str
    text: str


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            else:
                parts.append(PLACEHOLDER)
        return "".join(parts)
    return None


def mentions_in(source: str, where: str) -> Iterator[Mention]:
    tree = ast.parse(source)
    inside_fstring: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inside_fstring.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if id(node) in inside_fstring:
            continue
        text = _literal(node)
        if text is None:
            continue
        for match in MENTION.finditer(text):
            line = getattr(node, "lineno", 0)
            yield Mention(f"{where}:{line}", f"{match.group(1)} {match.group(2)}")


def all_mentions() -> list[Mention]:
    out: list[Mention] = []
    for folder in ("controlplane", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            out.extend(mentions_in(path.read_text(), str(path.relative_to(ROOT))))
    return out


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def problem(text: str) -> str | None:
    """Why the command line in ``text`` names something that does not exist (None: fine)."""
    program, _, rest = text.partition(" ")
    rest = PROSE_END.split(rest, maxsplit=1)[0]
    tokens = rest.split()
    command = PROGRAMS[program]
    allowed = _options(command) | {"--help"}
    path = [program]
    index = 0
    # The sub-command path: words while the current command is a group.
    while index < len(tokens) and hasattr(command, "commands"):
        token = tokens[index]
        if token.startswith("-"):
            if token.split("=")[0] in allowed:  # a global option before the sub-command
                index += 2 if "=" not in token else 1
                continue
            break
        if PLACEHOLDER in token or not re.fullmatch(r"[a-z][-a-z]*", token):
            # "cityctl <command>" and the like: not a command line.
            return None
        sub = command.commands.get(token)
        if sub is None:
            if index == 0:
                return None  # prose such as "the controlplane process"
            return f"{' '.join(path)} has no sub-command {token!r}"
        command = sub
        path.append(token)
        allowed |= _options(command)
        index += 1
    for token in tokens[index:]:
        if token.startswith("--") and PLACEHOLDER not in token.split("=")[0]:
            option = token.split("=")[0].rstrip(".,;:)")
            if option not in allowed and not hasattr(command, "commands"):
                return f"{' '.join(path)} has no option {option}"
            if option not in allowed:
                return f"{' '.join(path)} is a group; {option} needs a sub-command"
    return None


MENTIONS = all_mentions()


def test_there_are_hints_to_check() -> None:
    assert len(MENTIONS) > 20
    assert any("cityctl catalog show" in m.text for m in MENTIONS)


def test_every_hint_names_commands_and_options_that_exist() -> None:
    wrong = [f"{m.where}: {m.text!r}: {why}" for m in MENTIONS if (why := problem(m.text))]
    assert wrong == []


@pytest.mark.parametrize(
    "text",
    [
        "cityctl instance frobnicate gent/forms",
        "cityctl instance create forms --tenant gent --planet small",
        "controlplane catalog validat",
        "cityctl tenant update gent --max-instance 2",
    ],
)
def test_a_wrong_hint_is_caught(text: str) -> None:
    assert problem(text) is not None


def test_a_wrong_hint_in_source_is_found() -> None:
    source = 'hint = f"Run `cityctl instance create {name} --tenant {t} --plann small`."\n'
    found = list(mentions_in(source, "synthetic.py"))
    assert [problem(m.text) for m in found] == ["cityctl instance create has no option --plann"]


@pytest.mark.parametrize(
    "text",
    [
        "cityctl instance create forms --tenant gent --service open-formulieren --plan small",
        "cityctl catalog show <service>",
        "controlplane catalog validate",
        "cityctl --context prod tenant list",
    ],
)
def test_a_right_hint_passes(text: str) -> None:
    assert problem(text) is None
