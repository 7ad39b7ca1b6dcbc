"""Validation of UBL documents against the official Peppol BIS Billing 3.0 rule sets.

The rule sets are the compiled Schematron XSLTs of the OpenPeppol release (CEN EN 16931 UBL
rules, then the PEPPOL-EN16931-UBL rules), taken from the Maven artefact
``com.helger.phive.rules:phive-rules-peppol`` by ``fetch.sh`` into a cache outside the checkout
(``make peppol-rules``, a step of ``make test``; this module runs the script itself when the cache
is missing). They run on SaxonC-HE (``saxonche``), a real XSLT 3.0 processor; the SVRL reports
become :class:`Finding` values.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

#: Keep these the same as in fetch.sh.
ARTIFACT = "com.helger.phive.rules:phive-rules-peppol:4.3.7"
RELEASE = "OpenPeppol BIS Billing 3.0 release 2026.5"
RULE_SETS = ("CEN-EN16931-UBL.xslt", "PEPPOL-EN16931-UBL.xslt")

_FETCH = Path(__file__).with_name("fetch.sh")
_SVRL = "http://purl.oclc.org/dsdl/svrl"


@dataclass(frozen=True)
class Finding:
    rule_set: str  # CEN-EN16931-UBL or PEPPOL-EN16931-UBL
    flag: str  # fatal or warning
    rule_id: str  # BR-CO-15, PEPPOL-EN16931-R020 …
    text: str
    location: str

    def __str__(self) -> str:
        return f"[{self.flag}] {self.rule_id}: {self.text} ({self.location})"


class RulesUnavailable(RuntimeError):
    """The Peppol rule sets could not be fetched."""


@functools.cache
def rules_dir() -> Path:
    """The folder of the two XSLTs, fetched the first time (fails loudly, never skips)."""
    done = subprocess.run(["bash", str(_FETCH)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RulesUnavailable(
            f"could not fetch the Peppol BIS Billing 3.0 rule sets ({ARTIFACT}) with {_FETCH}:\n"
            f"{done.stderr.strip()}\nrun `make peppol-rules` once the network to Maven is back"
        )
    folder = Path(done.stdout.strip().splitlines()[-1])
    missing = [name for name in RULE_SETS if not (folder / name).is_file()]
    if missing:
        raise RulesUnavailable(f"{folder} lacks {', '.join(missing)}; delete it and run again")
    return folder


@functools.cache
def _processor() -> Any:
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@functools.cache
def _compiled(name: str) -> Any:
    compiler = _processor().new_xslt30_processor()
    return compiler.compile_stylesheet(stylesheet_file=str(rules_dir() / name))


def _svrl_findings(rule_set: str, svrl: str) -> list[Finding]:
    report = etree.fromstring(svrl.encode())
    findings = []
    for node in report.iter(f"{{{_SVRL}}}failed-assert", f"{{{_SVRL}}}successful-report"):
        text = " ".join("".join(node.itertext()).split())
        findings.append(
            Finding(
                rule_set=rule_set,
                flag=node.get("flag", "fatal"),
                rule_id=node.get("id", "?"),
                text=text,
                location=node.get("location", ""),
            )
        )
    return findings


def validate(xml: bytes) -> list[Finding]:
    """Every finding of the CEN EN 16931 UBL rules, then of the PEPPOL-EN16931-UBL rules."""
    findings: list[Finding] = []
    for name in RULE_SETS:
        document = _processor().parse_xml(xml_text=xml.decode("utf-8"))
        svrl = _compiled(name).transform_to_string(xdm_node=document)
        if not svrl:
            raise RuntimeError(f"{name} produced no SVRL report")
        findings.extend(_svrl_findings(name.removesuffix(".xslt"), svrl))
    return findings


def fatal(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.flag == "fatal"]
