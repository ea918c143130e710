"""When to try a failed send again: exponential backoff with full jitter, or the server's Retry-After."""

from __future__ import annotations

import random

_random = random.Random()  # noqa: S311 (jitter, not crypto)


def retry_delay(
    attempt: int, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1 failures so far).

    Full jitter (uniform in [0, min(cap, base * 2**(attempt-1))]) spreads the retries of many groups
    failing together, so a recovering service is not hit by all of them at once. A ``Retry-After`` from
    the server wins (plus a little jitter), even above the cap: it is the server saying when it will listen.
    """
    source = rng or _random
    if retry_after is not None:
        return retry_after + source.uniform(0.0, min(1.0, retry_after * 0.1 + 0.1))
    ceiling = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return source.uniform(0.0, ceiling)
