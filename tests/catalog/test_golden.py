"""Every shipped stack renders the objects recorded in ``golden.json`` (see ``golden.py``).

A change to templates or to the renderer that changes an object fails here, named by stack
and object id, unless it is listed in ``INTENDED`` with its reason. An intended change that
no longer differs fails too, so the list only holds what really changed; once reviewed,
``python -m tests.catalog.golden write`` records the new renders and the list is emptied.
"""

from __future__ import annotations

from tests.catalog import golden

#: ``(stack, object id)`` → why that object changes on purpose ("*" for a whole stack).
INTENDED: dict[tuple[str, str], str] = {}


def test_every_stack_renders_the_golden_objects() -> None:
    found = {
        (key, oid): what
        for key, oid, what in golden.changes(golden.recorded(), golden.digests(golden.render_all()))
    }
    unexpected = {k: v for k, v in found.items() if k not in INTENDED}
    assert not unexpected, (
        f"{len(unexpected)} object(s) render differently from golden.json "
        "(see them with `python -m tests.catalog.golden diff HEAD`): "
        + "; ".join(f"{key} {oid}: {what}" for (key, oid), what in sorted(unexpected.items())[:20])
    )
    stale = sorted(set(INTENDED) - set(found))
    assert not stale, f"listed as intended but rendered as recorded: {stale}"


def test_the_comparison_names_each_changed_object() -> None:
    before = {"a/1/small": {"v1/Service/web": "sha256:1", "v1/Secret/db": "sha256:2"}}
    after = {
        "a/1/small": {"v1/Service/web": "sha256:9", "v1/ConfigMap/x": "sha256:3"},
        "b/1/small": {},
    }
    assert list(golden.changes(before, after)) == [
        ("a/1/small", "v1/ConfigMap/x", "added"),
        ("a/1/small", "v1/Secret/db", "removed"),
        ("a/1/small", "v1/Service/web", "changed"),
        ("b/1/small", "*", "new stack"),
    ]
