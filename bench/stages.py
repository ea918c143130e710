"""Where the time of one POST /v1/findings goes: the ingest path in-process, stage by stage.

``python -m bench.stages [--batches N] [--sqlite]`` runs what the endpoint runs (orjson decode, item
validation, ``ingest.ingest`` in ``run_transaction``) on a scratch database, one batch of 500 at a time
(no concurrency, no HTTP), with timers wrapped around the pipeline's stages, and prints microseconds
per finding for a mixed pass (30% repeats), then for the same findings twice more (the second sighting
doubles the occurrences and so moves the score; the third does not). Not part of ``make bench``; it is
the profile to read next to the table when the rates miss their targets.
"""

from __future__ import annotations

import argparse
import functools
import gc
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.api.findings import decode_batch
from app.db import create_db_engine, run_transaction
from app.migrations import upgrade
from app.pipeline import dedupe, ingest, score
from app.pipeline.normalize import validate_items
from app.settings import load_settings
from bench import generator
from bench.common import BenchConfig, progress
from bench.load import batch_bodies
from bench.server import drop_database, recreate_database

# (module, attribute, label): wrapped in order; a stage's time excludes the stages nested in it.
STAGES: list[tuple[Any, str, str]] = [
    (ingest, "to_incoming", "fingerprint + content hash (to_incoming)"),
    (dedupe, "merge_duplicates", "merge duplicates in batch"),
    (dedupe, "match_existing", "SQL: alias lookup + lock existing (match_existing)"),
    (score, "score_finding", "score_finding"),
    (ingest, "_new_row", "build new rows (_new_row, minus score)"),
    (dedupe, "write_new", "SQL: insert new findings (write_new)"),
    (dedupe, "lock_conflicts", "SQL: lock lost races (lock_conflicts)"),
    (ingest, "_repeat_row", "build repeat rows (_repeat_row, minus score)"),
    (dedupe, "write_repeats", "SQL: update repeats (write_repeats)"),
    (dedupe, "write_history", "SQL: insert events + aliases (write_history)"),
]


HOT = "findings updates done in place (HOT), %"


class Timers:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []  # time spent in nested stages, per open frame

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(0.0)
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                nested = self._stack.pop()
                self.totals[label] += elapsed - nested
                if self._stack:
                    self._stack[-1] += elapsed

        return timed

    def time(self, label: str, fn: Callable[[], Any]) -> Any:
        return self.wrap(label, fn)()


def _hot_updates(engine: Any) -> tuple[int, int] | None:
    """(updates, HOT updates) of the findings table so far; None on SQLite. The statistics collector
    lags a little, so this is read after a short pause."""
    if engine.dialect.name != "postgresql":
        return None
    time.sleep(0.7)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        row = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'findings'"
        ).one()
        return int(row[0]), int(row[1])


def run(database_url: str, batches: int) -> list[tuple[str, dict[str, float], int]]:
    settings = load_settings(database_url=database_url)
    engine = create_db_engine(settings)
    upgrade(engine)
    count = batches * 500
    distinct = generator.findings_parallel(round(count * 0.7), seed=5)
    items = generator.blocked_repeats(distinct, count, 0.3, block=min(10_000, count))
    bodies = batch_bodies(items, 500)
    timers = Timers()
    originals = [(module, name, getattr(module, name)) for module, name, _ in STAGES]
    for module, name, label in STAGES:
        setattr(module, name, timers.wrap(label, getattr(module, name)))
    results = []
    try:
        for kind in ("new + 30% repeats", "same findings again", "and a third time"):
            hot_before = _hot_updates(engine)
            timers.totals.clear()
            gc.collect()
            began = time.perf_counter()
            for body in bodies:
                raw = timers.time("decode body (orjson)", lambda b=body: decode_batch(b.content, 1000))  # type: ignore[misc]
                valid, _ = timers.time("validate items (pydantic)", lambda r=raw: validate_items(r))  # type: ignore[misc]
                timers.time(
                    "transaction: begin, commit, rest of ingest()",
                    lambda v=valid: run_transaction(  # type: ignore[misc]
                        engine, lambda session: ingest.ingest(session, v, "bench", settings.scoring), 4
                    ),
                )
            totals = dict(timers.totals)
            totals["total (wall)"] = time.perf_counter() - began
            hot_after = _hot_updates(engine)
            if hot_before is not None and hot_after is not None:
                updates, hot = (after - before for after, before in zip(hot_after, hot_before, strict=True))
                totals[HOT] = 100.0 * hot / updates if updates else 0.0
            results.append((kind, totals, count))
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
        engine.dispose()
    return results


def render(database: str, results: list[tuple[str, dict[str, float], int]]) -> str:
    labels = ["decode body (orjson)", "validate items (pydantic)", *(label for _, _, label in STAGES)]
    labels += ["transaction: begin, commit, rest of ingest()", "total (wall)"]
    head = f"| {database}: µs per finding | " + " | ".join(kind for kind, _, _ in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]
    for label in labels:
        cells = [f"{totals.get(label, 0.0) / count * 1e6:,.1f}" for _, totals, count in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rates = [f"{count / totals['total (wall)']:,.0f}/s" for _, totals, count in results]
    lines.append("| = findings/s, one batch at a time | " + " | ".join(rates) + " |")
    if any(HOT in totals for _, totals, _ in results):
        shares = [f"{totals.get(HOT, 0.0):.0f}%" for _, totals, _ in results]
        lines.append("| findings updates that were HOT (in place) | " + " | ".join(shares) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 per pass (default 40)")
    parser.add_argument("--sqlite", action="store_true", help="also run on a scratch SQLite file")
    args = parser.parse_args()
    cfg = BenchConfig.from_env()
    recreate_database(cfg.admin_url, cfg.bench_url)
    progress(f"stages on PostgreSQL: {args.batches} batches of 500, one at a time")
    try:
        print(render("PostgreSQL", run(cfg.bench_url, args.batches)))
    finally:
        if not cfg.keep_database:
            drop_database(cfg.admin_url, cfg.bench_url)
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="tocsin-stages-") as scratch:
            progress("stages on SQLite")
            print(render("SQLite", run(f"sqlite:///{Path(scratch) / 'stages.db'}", args.batches)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
