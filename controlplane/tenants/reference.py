"""The reference list of Flemish municipalities shipped with the control plane.

Source of the figures: Statbel (Directorate-General Statistics - Statistics Belgium), open
data under CC BY 4.0; see ``data/README.md``. Used for onboarding (``tenant import``),
demos, tests and fleet-size benchmarks.
"""

from __future__ import annotations

from pathlib import Path

FLEMISH_MUNICIPALITIES_CSV = Path(__file__).resolve().parent / "data" / "flemish-municipalities.csv"
ATTRIBUTION = "Source: Statbel (Statistics Belgium), CC BY 4.0"
