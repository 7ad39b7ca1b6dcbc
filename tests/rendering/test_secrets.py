"""Generated credentials are stable, distinct per instance and name, and URL-safe."""

from __future__ import annotations

import re

from controlplane.rendering import derive_secret
from controlplane.rendering.secrets import SecretValues, given_values


def test_stable():
    assert derive_secret(b"k", "id-1", "db") == derive_secret(b"k", "id-1", "db")


def test_different_per_instance_name_and_server_secret():
    values = {
        derive_secret(b"k", "id-1", "db"),
        derive_secret(b"k", "id-2", "db"),
        derive_secret(b"k", "id-1", "admin"),
        derive_secret(b"other", "id-1", "db"),
        # The separator keeps the instance id and the name apart.
        derive_secret(b"k", "id-1d", "b"),
    }
    assert len(values) == 5


def test_url_safe_and_long_enough():
    value = derive_secret(b"k", "id-1", "db")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)


def test_lazy_mapping_records_what_it_gave_and_hides_values():
    secrets = SecretValues(b"k", "id-1")
    assert secrets.db == secrets["db"] == derive_secret(b"k", "id-1", "db")
    assert secrets.keys == derive_secret(b"k", "id-1", "keys")
    assert given_values(secrets) == {secrets.db, secrets.keys}
    assert secrets.db not in repr(secrets)
