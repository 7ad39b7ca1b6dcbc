"""Run one Helm action (helm-sdkpy) in a process of its own; used by the chart tests.

Why a separate process: helm-sdkpy embeds Helm v4 as a Go shared library, and the Go
runtime reads the environment once, from the process's start-up block. Helm picks its
storage driver from ``HELM_DRIVER``, so the memory driver (no release Secrets written to
the emulator) can only be chosen before the process starts. A child process also keeps
the Go runtime out of pytest's own process.

Usage: ``python -m tests.helm.helm_runner REQUEST.json RESULT.json`` where the request is
``{"action": "probe" | "lint" | "install", "chart": ..., "release": ..., "namespace": ...,
"kubeconfig": ..., "values": {...}}``; the result is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": <exception class>, "message": ...}``. The result goes to a file
because Helm may write to stdout itself.

This module must not know about the chart's contents or the emulator.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def run(request: dict[str, Any]) -> Any:
    import helm_sdkpy

    action = request["action"]
    if action == "probe":
        helm_sdkpy._ffi.get_library()
        return {"version": helm_sdkpy._ffi.get_version()}
    config = helm_sdkpy.Configuration(
        namespace=request.get("namespace", "default"), kubeconfig=request.get("kubeconfig")
    )
    if action == "lint":
        return asyncio.run(helm_sdkpy.Lint(config).run(request["chart"]))
    if action == "install":
        install = helm_sdkpy.Install(config)
        return asyncio.run(
            install.run(
                request["release"],
                request["chart"],
                values=request.get("values") or None,
                wait=False,
                timeout=int(request.get("timeout", 60)),
            )
        )
    raise ValueError(f"unknown action {action!r}")


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    try:
        answer: dict[str, Any] = {"ok": True, "result": run(request)}
    except Exception as exc:  # every failure is reported to the test, which judges it
        answer = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    result_path.write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
