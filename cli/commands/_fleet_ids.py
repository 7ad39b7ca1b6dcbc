"""Fleet plan and run ids as git shows commits: short in tables, any unique prefix accepted.

The API takes full UUIDs only; prefixes are resolved here, over the list endpoints.
"""

from __future__ import annotations

import uuid
from typing import Literal

from cli.client import ApiClient
from cli.commands._shared import API
from cli.errors import CliError, ExitCode

#: Tables and messages show ids as git shows commits: the first 8 hex digits of the UUID.
SHORT_ID = 8
#: A shorter prefix than this is refused: it would too often name several plans or runs.
MIN_PREFIX = 4


def short(full_id: str) -> str:
    return full_id[:SHORT_ID]


def resolve(client: ApiClient, kind: Literal["plan", "run"], given: str, command: str) -> str:
    """The full id of the plan or run that ``given`` (a full id or a unique prefix) names.

    Prefixes are matched here, over the list endpoint: the API takes full UUIDs only.
    """
    text = given.strip().lower()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if len(text) < MIN_PREFIX or text.strip("0123456789abcdef-"):
        raise CliError(
            f"{given!r} is not a {kind} id: give the id or at least its first {MIN_PREFIX} "
            "hex digits.",
            exit_code=ExitCode.USAGE,
            hint=f"List the ids with `cityctl fleet {kind}s`.",
        )
    found = [
        row for row in client.list_all(f"{API}/fleet/{kind}s") if str(row["id"]).startswith(text)
    ]
    if not found:
        raise CliError(
            f"No fleet {kind} has an id starting with {text!r}.",
            exit_code=ExitCode.NOT_FOUND,
            hint=f"List the ids with `cityctl fleet {kind}s`.",
        )
    if len(found) > 1:
        longest = max(len(_common(str(row["id"]), str(found[0]["id"]))) for row in found[1:])
        names = ", ".join(str(row["id"])[: max(SHORT_ID, longest + 1)] for row in found)
        example = str(found[0]["id"])[: max(SHORT_ID, longest + 1)]
        raise CliError(
            f"{text!r} names {len(found)} fleet {kind}s: {names}.",
            exit_code=ExitCode.USAGE,
            hint=f"Give more of the id, e.g. `cityctl fleet {command} {example}`; "
            f"`cityctl fleet {kind}s` lists them.",
        )
    return str(found[0]["id"])


def _common(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
