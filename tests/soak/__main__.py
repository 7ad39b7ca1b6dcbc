"""``python -m tests.soak``: run the soak (see tests/soak/runner.py)."""

from __future__ import annotations

import sys

from tests.soak.runner import main

sys.exit(main())
