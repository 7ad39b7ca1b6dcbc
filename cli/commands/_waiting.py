"""``--wait``: poll an instance until the reconciler has acted on our change.

The API answers writes with ``202`` and the instance's new ``generation``; the change
is done when ``status.observedGeneration`` has caught up and the phase is final
(Ready, Committed on a GitOps target that does not observe its cluster, or Failed; for a
delete, the instance is gone or Deleted). Progress goes to
stderr as a rich status line so that stdout stays machine-readable.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from cli.client import ApiClient
from cli.errors import CliError, ExitCode
from cli.output import stderr

WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait until the change is done (Ready, or Committed on a GitOps target that does "
        "not observe its cluster, or Failed); exit 1 on Failed, 7 on timeout.",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Seconds --wait waits before giving up (exit 7)."),
]

#: Committed: written by a GitOps target that cannot observe the cluster (its success).
FINAL = frozenset({"Ready", "Committed", "Failed", "Retained"})


def settling(instance: dict[str, Any]) -> str:
    """What ``--wait`` waits for, in words: the phase the instance settles at on its target."""
    if instance.get("settles_at") == "Committed":
        return (
            f"Committed (the target {instance.get('target')} writes to a GitOps repository and "
            "does not observe the cluster)"
        )
    return "Ready"


def _status(instance: dict[str, Any]) -> dict[str, Any]:
    status = instance.get("status")
    return status if isinstance(status, dict) else {}


def describe(instance: dict[str, Any]) -> str:
    status = _status(instance)
    phase = status.get("phase", "?")
    message = status.get("message")
    return f"{phase}: {message}" if message else str(phase)


def failed(instance: dict[str, Any]) -> CliError:
    """The reconciler's status message (detail, items, ``hint:`` lines) as one line + hint."""
    name = instance.get("name")
    lines = [
        line.strip().removeprefix("- ")
        for line in str(_status(instance).get("message") or "no message").splitlines()
    ]
    hints = [line.removeprefix("hint:").strip() for line in lines if line.startswith("hint:")]
    facts = [line for line in lines if line and not line.startswith("hint:")]
    detail = facts[0].rstrip(".")
    if len(facts) > 1:
        detail += f" ({facts[1]}" + (f" and {len(facts) - 2} more)" if len(facts) > 2 else ")")
    hint = f"See `cityctl instance history {name}` and `cityctl instance show {name}`."
    if hints:
        hint = f"{hints[0].rstrip('.')}. {hint}"
    return CliError(f"{name} failed: {detail}.", exit_code=ExitCode.FAILED, hint=hint)


def wait_for_instance(
    client: ApiClient,
    path: str,
    *,
    generation: int,
    timeout: float,
    deleting: bool = False,
) -> dict[str, Any] | None:
    """Poll ``path`` until the instance settled at ``generation``; return its last state.

    Returns ``None`` when a deletion finished (the instance is gone). Raises a
    :class:`CliError` with exit 1 when it ended Failed and exit 7 on timeout.
    """
    deadline = time.monotonic() + timeout
    delay = 0.2
    last: dict[str, Any] | None = None
    label = "deleted" if deleting else "ready"
    announced = deleting
    with stderr.status(f"Waiting for {path.rsplit('/', 1)[-1]} to be {label}…") as spinner:
        while True:
            try:
                last = client.get_json(path)
            except CliError as error:
                if deleting and error.exit_code is ExitCode.NOT_FOUND:
                    stderr.print("Deleted.")
                    return None
                raise
            assert last is not None
            if not announced:
                stderr.print(f"Waiting for {settling(last)}…")
                announced = True
            status = _status(last)
            phase = status.get("phase")
            caught_up = int(status.get("observedGeneration") or 0) >= generation
            spinner.update(f"{path.rsplit('/', 1)[-1]}: {describe(last)}")
            if deleting and phase == "Deleted":
                stderr.print("Deleted.")
                return last
            if caught_up and phase == "Failed":
                raise failed(last)
            if not deleting and caught_up and phase in FINAL:
                stderr.print(f"{last.get('name')} is {phase}.")
                return last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CliError(
                    f"Gave up waiting after {timeout:g}s; {last.get('name')} is "
                    f"{describe(last)} (generation {generation}, observed "
                    f"{status.get('observedGeneration')}).",
                    exit_code=ExitCode.TIMEOUT,
                    hint="The change goes on in the background: check with `cityctl instance "
                    "show`, or wait longer with --timeout.",
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 2.0)
