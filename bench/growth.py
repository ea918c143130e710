"""Ingest rate as the store grows: a 10k batch when it holds 0, 100k, 500k and 1M findings.

The bulk goes straight into the real ``findings``, ``finding_aliases`` and ``finding_events`` tables
(see ``bulk_fill``) with rows built by the service's own functions (bench/rows.py), so dedup lookups
and indexes see what ingest would have left.
Each step then posts 10k new findings, re-sends 10k findings picked at random from the store, and posts
another 10k new ones; the rate of a 10k batch is over both new batches.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.ceiling import copy_rows
from bench.generator import clone_finding
from bench.load import Body, LoadResult, batch_bodies, combined, post_batches
from bench.rows import ACTOR, CLONE_COLUMNS, FINDING_COLUMNS, Template, clone_identity
from bench.server import Service, pg_connect

BULK_SERIAL_BASE = 100_000_000  # clone serials; far from any generator serial the bench posts
CHUNK = 25_000


@dataclass(slots=True)
class GrowthStep:
    store_size: int
    new: LoadResult
    repeats: LoadResult
    fill_seconds: float = 0.0  # time to COPY the bulk that brought the store to this size


@dataclass(slots=True)
class Growth:
    steps: list[GrowthStep] = field(default_factory=list)
    fill_rate: float = 0.0  # rows/s of the bulk COPY (findings + aliases + events)

    @property
    def ratio(self) -> float:
        if len(self.steps) < 2 or self.steps[0].new.rate == 0:
            return 0.0
        return self.steps[-1].new.rate / self.steps[0].new.rate


TEMPLATE_TABLE = "bench_templates"
_CLONED = {"id", "fingerprint", "source_id", "resource_id", "path", "content_hash"}


def _select_expression(name: str) -> str:
    if name in _CLONED:
        return f'c."{name}"'
    if name == "first_seen":  # min(observed_at, now), or now without observed_at: what _new_row writes
        return "least(t.observed_at, %(now)s)"
    if name in ("last_seen", "created_at", "updated_at"):
        return "%(now)s"
    return f't."{name}"'


_COLUMN_LIST = ", ".join(f'"{name}"' for name in FINDING_COLUMNS)
INSERT_FINDINGS = (
    f"INSERT INTO findings ({_COLUMN_LIST}) SELECT {', '.join(map(_select_expression, FINDING_COLUMNS))} "
    f"FROM bench_clones c JOIN {TEMPLATE_TABLE} t ON t.tid = c.tid ORDER BY c.id"
)
INSERT_ALIASES = (
    "INSERT INTO finding_aliases (alias_hash, alias, finding_id, created_at) "
    "SELECT alias_hash, alias, id, %(now)s FROM bench_clones WHERE alias_hash IS NOT NULL ORDER BY id"
)
INSERT_EVENTS = (
    "INSERT INTO finding_events (finding_id, kind, actor, at, from_status, to_status, note) "
    f"SELECT c.id, 'created', %(actor)s, %(now)s, NULL, t.status, t.status_note "
    f"FROM bench_clones c JOIN {TEMPLATE_TABLE} t ON t.tid = c.tid ORDER BY c.id"
)
CREATE_CLONES = (
    "CREATE TEMP TABLE bench_clones (tid integer, id varchar(32), fingerprint varchar(64), source_id text, "
    "resource_id text, path text, content_hash varchar(32), alias_hash varchar(64), alias text) ON COMMIT DROP"
)


def load_templates(url: str, templates: list[Template]) -> None:
    """The template rows, in a scratch table of the benchmark database, for INSERT ... SELECT."""
    with pg_connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TEMPLATE_TABLE}")
        cursor.execute(
            f"CREATE UNLOGGED TABLE {TEMPLATE_TABLE} (LIKE findings INCLUDING DEFAULTS, tid integer)"
        )
        rows = ([*(t.row[name] for name in FINDING_COLUMNS), tid] for tid, t in enumerate(templates))
        copy_rows(cursor, TEMPLATE_TABLE, (*FINDING_COLUMNS, "tid"), rows)
        cursor.execute(f"ALTER TABLE {TEMPLATE_TABLE} ADD PRIMARY KEY (tid)")
        conn.commit()


def _fill_chunk(url: str, templates: list[Template], first_serial: int, count: int, now: datetime) -> int:
    size = len(templates)
    clones = [
        clone_identity(templates[serial % size], serial % size, serial)
        for serial in range(first_serial, first_serial + count)
    ]
    params = {"now": now, "actor": ACTOR}
    with pg_connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(CREATE_CLONES)
        copy_rows(cursor, "bench_clones", CLONE_COLUMNS, clones)
        cursor.execute(INSERT_FINDINGS, params)
        cursor.execute(INSERT_ALIASES, params)
        cursor.execute(INSERT_EVENTS, params)
        conn.commit()
    return count


def bulk_fill(
    url: str,
    templates: list[Template],
    first_serial: int,
    count: int,
    on_progress: Callable[[int], None] | None = None,
    workers: int = 2,
) -> float:
    """Add ``count`` clones (serials from ``first_serial``) to the store; returns the seconds taken.

    Each chunk COPYs the clones' identities (computed in Python by the service's fingerprint functions)
    into a temporary table, then one INSERT ... SELECT per table joins them to the template rows, so
    PostgreSQL copies the template's already-parsed JSONB instead of parsing 1.5 KB of text per row.
    Two connections work in parallel, one per core.
    """
    now = datetime.now(UTC)
    began = time.perf_counter()
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_fill_chunk, url, templates, first_serial + offset, min(CHUNK, count - offset), now)
            for offset in range(0, count, CHUNK)
        ]
        for future in futures:
            done += future.result()
            if on_progress:
                on_progress(done)
    with pg_connect(url, autocommit=True) as conn:  # what autovacuum would do soon after such a load
        conn.execute("ANALYZE findings, finding_aliases, finding_events")
    return time.perf_counter() - began


def store_size(url: str) -> int:
    with pg_connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM findings").fetchone()
        return int(row[0]) if row else 0


def repeat_bodies(
    payloads: Sequence[dict[str, Any]], filled: range, sent: Sequence[dict[str, Any]], count: int, batch: int
) -> list[Body]:
    """``count`` findings already in the store, at random: bulk clones when there are any, else ``sent``."""
    rng = random.Random(len(filled) + count)
    if len(filled) == 0:
        picks = [sent[rng.randrange(len(sent))] for _ in range(count)]
    else:
        serials = rng.sample(filled, min(count, len(filled)))
        picks = [clone_finding(payloads[serial % len(payloads)], serial) for serial in serials]
    return batch_bodies(picks, batch)


def measure_step(
    service: Service,
    size: int,
    new_sets: Sequence[Sequence[dict[str, Any]]],
    repeats: list[Body],
    batch: int,
    clients: int,
) -> GrowthStep:
    """Each set of new findings, with the re-sent batch between them; the new rate is over all sets
    (two 10k batches average out a hiccup of the shared machine that one 3-second run would show)."""
    new_results = []
    repeat_result = LoadResult()
    for index, new in enumerate(new_sets):
        new_results.append(post_batches(service, batch_bodies(new, batch), clients))
        if index == 0:
            repeat_result = post_batches(service, repeats, clients)
    return GrowthStep(size, combined(new_results), repeat_result)
