"""Generated credentials: derived per instance, never stored.

A database password or session key of an instance is ``HMAC-SHA256(server secret,
instance id + name)``: stable across reconciles and re-renders years later, different for
every instance and name, and recoverable only with the server secret. The control plane
never stores, returns or logs these values.

This module must not know about templates or Kubernetes objects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def derive_secret(server_secret: bytes, instance_id: str, name: str) -> str:
    """The credential ``name`` of one instance: 43 URL-safe characters (256 bits)."""
    # The NUL separator keeps ("a", "bc") and ("ab", "c") apart.
    message = f"{instance_id}\x00{name}".encode()
    digest = hmac.new(server_secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SecretValues:
    """The ``secrets`` of the template context: ``secrets.<name>`` derives on first use.

    It records what it handed out, so that the renderer can check that no credential
    leaves a ``Secret`` object. It has no public methods on purpose: any attribute name a
    template uses (``secrets.keys`` included) is a credential name.
    """

    __slots__ = ("_given", "_instance_id", "_rotated", "_server_secret")

    def __init__(
        self, server_secret: bytes, instance_id: str, *, rotated: tuple[str, int] | None = None
    ) -> None:
        """``rotated``: one credential name and how often it was rotated; rotation ``n > 0``
        derives it from ``<name>#<n>`` (0 derives it as if never rotated)."""
        self._server_secret = server_secret
        self._instance_id = instance_id
        self._rotated = rotated
        self._given: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        value = self._given.get(name)
        if value is None:
            derived_from = str(name)
            if self._rotated is not None and self._rotated[0] == name and self._rotated[1] > 0:
                derived_from = f"{name}#{self._rotated[1]}"
            value = derive_secret(self._server_secret, self._instance_id, derived_from)
            self._given[name] = value
        return value

    def __getattr__(self, name: str) -> str:
        # Jinja's sandbox tries attributes before items; dunder lookups must still fail.
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __repr__(self) -> str:
        # Never show values, not even in a traceback.
        return f"<secrets of instance {self._instance_id}>"


def given_values(secrets: SecretValues) -> frozenset[str]:
    """The credentials a render used (for the leak check)."""
    return frozenset(secrets._given.values())
