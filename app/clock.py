"""Time and identifiers: UTC everywhere, ids that sort by creation time."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 32-hex-character id: 48 bits of milliseconds then 80 random bits (UUIDv7-like ordering)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"
