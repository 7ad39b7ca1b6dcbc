r"""Regenerate the vendored CRD schemas from cert-manager's Go module (run by hand).

    go mod download -json github.com/cert-manager/cert-manager@v1.21.2   # prints its Dir
    .venv/bin/python -m controlplane.rendering.crds.extract \
        DIR/deploy/crds/cert-manager.io_certificates.yaml

Writes ``certificate-cert-manager.io-v1.json``: the CRD's ``openAPIV3Schema`` of version v1,
made strict the way the API server's strict field validation is (an object with
``properties`` and no ``additionalProperties`` / ``x-kubernetes-preserve-unknown-fields``
refuses unknown fields).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def main(crd_file: str) -> None:
    crd = yaml.safe_load(Path(crd_file).read_text())
    spec = crd["spec"]
    for version in spec["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["x-kubernetes-group-version-kind"] = [
            {"group": spec["group"], "version": version["name"], "kind": spec["names"]["kind"]}
        ]
        name = f"{spec['names']['kind'].lower()}-{spec['group']}-{version['name']}.json"
        (HERE / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
