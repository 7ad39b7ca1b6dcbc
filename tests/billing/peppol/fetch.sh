#!/usr/bin/env bash
# Fetches the official Peppol BIS Billing 3.0 validation artefacts into a cache outside the checkout.
#
# The compiled Schematron XSLTs (CEN EN 16931 UBL + PEPPOL-EN16931-UBL, as released by OpenPeppol)
# ship inside the Maven artefact com.helger.phive.rules:phive-rules-peppol, the rule packs of the
# phive validator; Maven fetches it (and checks the repository's checksums), this script checks the
# pinned SHA-256 and unpacks the two XSLTs into a folder keyed by artefact and release version.
#
#   tests/billing/peppol/fetch.sh     prints the folder holding CEN-EN16931-UBL.xslt and
#                                     PEPPOL-EN16931-UBL.xslt (fetches them the first time)
#
# The versions are also in tests/billing/peppol/__init__.py (keep them the same).
set -euo pipefail

artifact_version="4.3.7"
release="2026.5"   # OpenPeppol release of BIS Billing 3.0 inside that jar
sha256="c82aaeda5ca16166034421393d160ec6cf77460b16e027eecc4bb5fe67a552ce"
cache="${CITY_PEPPOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/city-platform/peppol}"
out="$cache/phive-rules-peppol-$artifact_version/openpeppol-$release"

if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
fail() { echo "peppol rules: $*" >&2; exit 1; }
command -v mvn >/dev/null || fail "no Maven (mvn) on PATH; it fetches com.helger.phive.rules:phive-rules-peppol:$artifact_version"
command -v python3 >/dev/null || fail "no python3 on PATH (it unpacks the jar)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/peppol-rules.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "peppol rules: fetching com.helger.phive.rules:phive-rules-peppol:$artifact_version into $out" >&2
if ! mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="com.helger.phive.rules:phive-rules-peppol:$artifact_version:jar" \
    -DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1; then
  cat "$tmp/mvn.log" >&2
  fail "Maven could not fetch com.helger.phive.rules:phive-rules-peppol:$artifact_version (see above)"
fi
jar="$tmp/phive-rules-peppol-$artifact_version.jar"
got="$(sha256sum "$jar" | cut -d' ' -f1)"
[ "$got" = "$sha256" ] || fail "checksum mismatch for $jar: expected $sha256, got $got"

inside="external/schematron/openpeppol/$release/xslt"
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
python3 - "$jar" "$inside" "$out.tmp" <<'PY' || fail "the jar has no $inside/{CEN,PEPPOL}-EN16931-UBL.xslt"
import sys, zipfile
from pathlib import Path
jar, inside, out = sys.argv[1:]
with zipfile.ZipFile(jar) as z:
    for name in ("CEN-EN16931-UBL.xslt", "PEPPOL-EN16931-UBL.xslt"):
        Path(out, name).write_bytes(z.read(f"{inside}/{name}"))
PY
rm -rf "$out" && mv "$out.tmp" "$out"
touch "$out/.complete"
echo "$out"
