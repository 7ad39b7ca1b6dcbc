"""Errors of the Kubernetes port, and reading the API server's ``Status`` bodies.

The port turns every ``kubernetes.client`` failure into one of these (with the client's
exception chained as the cause), so nothing above the port depends on the client library.
Messages are built from the server's ``Status`` (reason, message, causes with field paths) and
never carry object contents: a Secret's data must not reach a message or a log.

This module must not know about the database, rendering or the reconciler.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import Conflict, ErrorItem, InvalidInput, Unavailable


class TargetUnavailable(Unavailable):
    """The Kubernetes target did not answer successfully within the retry budget."""

    title = "Kubernetes target unavailable"
    code = "target_unavailable"


class TargetForbidden(TargetUnavailable):
    """The Kubernetes target refused a request (403/401): the platform's credentials or
    permissions, or a ResourceQuota of the namespace (the hint says which)."""

    code = "target_forbidden"


class ObjectRejected(InvalidInput):
    """The Kubernetes target rejected an object as invalid."""

    title = "Object rejected by Kubernetes"
    code = "object_rejected"


class UnknownKind(InvalidInput):
    """The Kubernetes target does not serve this kind (is its CRD installed?)."""

    title = "Kind not served by the target"
    code = "unknown_kind"


class ApplyConflict(Conflict):
    """Another field manager owns fields the platform tried to set."""

    title = "Field ownership conflict"
    code = "apply_conflict"


@dataclass(frozen=True, slots=True)
class KubeStatus:
    """The parts of a Kubernetes ``Status`` body the port acts on."""

    code: int
    reason: str = ""
    message: str = ""
    #: (field, message) for each cause the server listed.
    causes: list[tuple[str, str]] = field(default_factory=list)
    retry_after: float | None = None

    @classmethod
    def parse(cls, code: int, body: bytes | str | None, headers: Any = None) -> KubeStatus:
        data: dict[str, Any] = {}
        if body:
            try:
                loaded = json.loads(body)
            except ValueError:
                loaded = None
            if isinstance(loaded, dict):
                data = loaded
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
        causes = [
            (str(c.get("field") or ""), str(c.get("message") or c.get("reason") or ""))
            for c in (details or {}).get("causes") or []
            if isinstance(c, dict)
        ]
        retry_after: float | None = None
        raw_retry = headers.get("Retry-After") if headers is not None else None
        if raw_retry is not None:
            try:
                retry_after = max(0.0, float(raw_retry))
            except ValueError:
                retry_after = None
        message = str(data.get("message") or "")
        if not message and isinstance(body, bytes | str) and not data:
            message = (body.decode(errors="replace") if isinstance(body, bytes) else body)[:200]
        return cls(code, str(data.get("reason") or ""), message, causes, retry_after)

    @property
    def is_field_conflict(self) -> bool:
        """A server-side apply conflict (as opposed to optimistic-concurrency 409s)."""
        return self.code == 409 and (
            self.message.startswith("Apply failed")
            or any("conflict with" in m for _f, m in self.causes)
        )


# The real server quotes rejected values ("Invalid value: \"…\""); for Secrets those may be
# credentials, so they are cut from anything the port reports about a Secret.
_INVALID_VALUE = re.compile(r"Invalid value: (\"(?:[^\"\\]|\\.)*\"|\S+)")


def redact(text: str, kind: str) -> str:
    if kind != "Secret":
        return text
    return _INVALID_VALUE.sub("Invalid value: <redacted>", text)


def rejected(object_id: str, kind: str, status: KubeStatus) -> ObjectRejected:
    items = [
        ErrorItem(f"{object_id}: {f.lstrip('.')}" if f else object_id, redact(m, kind))
        for f, m in status.causes
    ]
    fields = ", ".join(f.lstrip(".") for f, _m in status.causes if f)
    return ObjectRejected(
        detail=f"Kubernetes rejected {object_id}"
        + (f" (field {fields})" if fields else "")
        + f": {redact(status.message, kind) or status.reason}",
        errors=items,
        hint="fix the template or parameters that produce this field and publish again",
        extra={"object": object_id, "reason": status.reason},
    )


def conflict(object_id: str, status: KubeStatus) -> ApplyConflict:
    return ApplyConflict(
        detail=f"{object_id}: {status.message}",
        errors=[ErrorItem(f"{object_id}: {f.lstrip('.')}", m) for f, m in status.causes],
        hint="another controller or person manages these fields; remove them from that "
        "manager or let the platform force its apply",
        extra={"object": object_id},
    )
