"""The URLs where people reach an instance (the API's ``urls``), said honestly.

Printed on stderr like the other sentences of ``instance`` commands, so that stdout stays
the document (``-o json``/``-o yaml`` carry ``urls`` themselves). Only an instance whose
phase is Ready says so; otherwise the URLs are where it *will* answer.
"""

from __future__ import annotations

from typing import Any

from cli.output import stderr


def url_heading(instance: dict[str, Any]) -> str:
    phase = str((instance.get("status") or {}).get("phase", ""))
    if phase == "Ready":
        return "URLs (the instance is Ready: its workloads are available):"
    if phase == "Committed":
        return (
            "URLs (will be reachable once the GitOps controller has applied the commit; "
            "the platform cannot observe that target):"
        )
    return f"URLs (will be reachable once Ready; now {phase or 'unknown'}):"


def print_urls(instance: dict[str, Any]) -> None:
    """The instance's URLs under a heading that says whether they answer yet; none: nothing."""
    urls = instance.get("urls") or []
    if not urls:
        return
    width = max(len(str(u["name"])) for u in urls)
    stderr.print(url_heading(instance), highlight=False, markup=False)
    for u in urls:
        stderr.print(
            f"  {u['name']:<{width}}  {u['url']}  ({u['title']})", highlight=False, markup=False
        )
