"""Time and identifiers: UTC everywhere, ids that sort by creation time."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

# Ids need to be unique, not secret: a PRNG seeded from the OS is enough and avoids a syscall per id.
_random = random.Random()  # noqa: S311
os.register_at_fork(after_in_child=_random.seed)  # forked workers must not share a sequence


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 32-hex-character id: 48 bits of milliseconds then 80 random bits (UUIDv7-like ordering)."""
    return f"{int(time.time() * 1000):012x}{_random.getrandbits(80):020x}"
