"""/v1/stats: counts by status, severity and source.

Counting a large store is a full scan (about a second at a million findings), so when a count took
longer than ``SLOW_COUNT`` it is reused for ``TOCSIN_STATS_CACHE_SECONDS`` by this process; the answer
says when it was taken (``as_of``). Small stores are always counted fresh.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Request

from app.api.deps import EngineDep, ReadCaller, SettingsDep
from app.api.docs import error_responses
from app.api.schemas import StatsOut
from app.clock import utcnow
from app.db import read_only, unit_of_work
from app.repositories import finding_queries as queries

router = APIRouter(prefix="/v1", tags=["findings"])

SLOW_COUNT = 0.1  # seconds


@dataclass
class _Cached:
    stats: StatsOut | None = None
    expires: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)  # one recount at a time


@router.get(
    "/stats",
    summary="Count findings",
    description="Counts by status, severity label and source. On large stores the counts may be up to "
    "`TOCSIN_STATS_CACHE_SECONDS` old; `as_of` says when they were taken. Needs `read`.",
    response_model=StatsOut,
    responses=error_responses(401, 403),
)
def get_stats(caller: ReadCaller, request: Request, engine: EngineDep, settings: SettingsDep) -> StatsOut:
    cache: _Cached | None = getattr(request.app.state, "stats_cache", None)
    if cache is None:
        cache = request.app.state.stats_cache = _Cached()
    if cache.stats is not None and time.monotonic() < cache.expires:
        return cache.stats
    with cache.lock:
        if cache.stats is not None and time.monotonic() < cache.expires:
            return cache.stats
        started = time.monotonic()
        with unit_of_work(read_only(engine)) as session:
            counts = queries.stats(session)
        stats = StatsOut(total=sum(counts["by_status"].values()), as_of=utcnow(), **counts)
        elapsed = time.monotonic() - started
        if elapsed > SLOW_COUNT and settings.stats_cache_seconds > 0:
            cache.stats, cache.expires = stats, time.monotonic() + settings.stats_cache_seconds
        return stats
