"""Settings of one benchmark run, progress lines and small statistics shared by the phases."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "tocsin_bench"
TOKEN = "tcn_bench_" + "0" * 40

_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One line per phase on stderr, with the time since the run started."""
    elapsed = time.perf_counter() - _STARTED
    print(f"[{int(elapsed) // 60:2d}:{int(elapsed) % 60:02d}] {message}", file=sys.stderr, flush=True)


def scaled(count: int, scale: float, floor: int) -> int:
    """``count`` x ``scale``, at least ``floor``, rounded to whole batches of 500 when large enough."""
    value = max(floor, int(count * scale))
    return value - value % 500 if value >= 1000 else value


@dataclass(slots=True)
class BenchConfig:
    """What one run does; every count follows ``scale`` (env BENCH_SCALE, 1.0 = the issue's numbers)."""

    scale: float
    admin_url: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    batch_size: int = 500
    clients: int = 4
    ingest_count: int = 200_000
    repeat_ratio: float = 0.3
    trivy_vulns: int = 10_000
    growth_sizes: tuple[int, ...] = (0, 100_000, 500_000, 1_000_000)
    growth_batch: int = 10_000
    query_requests: int = 200
    query_seconds: float = 6.0  # time cap per query line, so a slow query cannot blow the budget
    deep_pages: int = 20
    keep_database: bool = False

    @classmethod
    def from_env(cls, quick: bool = False) -> BenchConfig:
        scale = float(os.environ.get("BENCH_SCALE", "0.01" if quick else "1"))
        if not 0 < scale <= 10:
            raise SystemExit(f"BENCH_SCALE must be in (0, 10], got {scale}")
        return cls(
            scale=scale,
            admin_url=os.environ.get("TOCSIN_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL),
            ingest_count=scaled(200_000, scale, 2_000),
            trivy_vulns=scaled(10_000, scale, 200),
            growth_sizes=tuple(
                [0] + [scaled(n, scale, 2_000 * k) for k, n in ((1, 100_000), (2, 500_000), (3, 1_000_000))]
            ),
            growth_batch=scaled(10_000, scale, 1_000),
            query_requests=max(20, int(200 * min(1.0, scale * 10))),
            query_seconds=6.0 if scale >= 0.5 else 1.5,
            deep_pages=20 if scale >= 0.1 else 3,
            keep_database=os.environ.get("BENCH_KEEP_DB", "") not in ("", "0"),
        )

    @property
    def bench_url(self) -> str:
        """The scratch database next to the one named by TOCSIN_BENCH_DATABASE_URL."""
        return make_url(self.admin_url).set(database=BENCH_DATABASE).render_as_string(hide_password=False)

    @property
    def date_tag(self) -> str:
        return self.started_at.strftime("%Y-%m-%d")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0
