"""Where the shared real-world sample documents are: ../shared/samples beside the checkout.

TOCSIN_SAMPLES overrides the location. Missing samples fail the tests that need them (never a skip).
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(os.environ["TOCSIN_SAMPLES"]) if os.environ.get("TOCSIN_SAMPLES") else None,
    Path(__file__).resolve().parents[2] / "shared" / "samples",
    Path("/work/shared/samples"),
]


def samples_root() -> Path:
    for candidate in _CANDIDATES:
        if candidate is not None and (candidate / "scanners").is_dir():
            return candidate
    raise FileNotFoundError(
        "shared sample documents not found; set TOCSIN_SAMPLES to the samples folder (../shared/samples)"
    )


SAMPLES = samples_root()
SCANNERS = SAMPLES / "scanners"
AWS = SAMPLES / "aws"
