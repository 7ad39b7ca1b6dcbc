"""Package a rendered stack as a Helm chart, so Helm and the platform apply the same objects.

The Helm side of ``bench_helm`` needs a chart whose templates are exactly the objects the
platform's renderer produced for one instance: static YAML, no ``.Release.Name``, values
unused. Building it at run time (into a temporary folder) keeps the two sides identical
whenever the catalogue changes, instead of a checked-in chart that drifts.

This module must not know about the database, the reconciler or the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

#: Helm's own template delimiters: a rendered value that contains them must stay literal.
_OPEN, _CLOSE = "\x00open\x00", "\x00close\x00"


def helm_literal(text: str) -> str:
    """``text`` as a Helm template that renders to ``text`` itself (``{{``/``}}`` escaped)."""
    marked = text.replace("{{", _OPEN).replace("}}", _CLOSE)
    return marked.replace(_OPEN, '{{ "{{" }}').replace(_CLOSE, '{{ "}}" }}')


def write_chart(
    folder: Path,
    objects: Iterable[Mapping[str, Any]],
    *,
    name: str = "stack",
    version: str = "0.1.0",
    app_version: str = "",
) -> Path:
    """Write ``folder/<name>/`` with one template file per object; returns the chart path.

    File names keep the caller's order (``000-<kind>-<name>.yaml``); Helm re-sorts by its own
    install order anyway, as the platform does by its apply order.
    """
    chart = folder / name
    templates = chart / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    meta = {"apiVersion": "v2", "name": name, "version": version, "type": "application"}
    if app_version:
        meta["appVersion"] = app_version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    (chart / "values.yaml").write_text("# unused: the templates are static\n{}\n")
    for index, obj in enumerate(objects):
        # JSON round trip: plain dicts/lists/str only, so safe_dump never meets a custom type.
        plain = json.loads(json.dumps(obj))
        kind = str(plain["kind"]).lower()
        file = templates / f"{index:03d}-{kind}-{plain['metadata']['name']}.yaml"
        text = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
        file.write_text(helm_literal(text), encoding="utf-8")
    return chart
