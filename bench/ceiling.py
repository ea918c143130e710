"""The storage ceiling: the same findings rows bulk-loaded with no service in the way.

PostgreSQL: one ``COPY`` (psycopg) into a scratch table with the findings table's columns, primary key
and unique fingerprint (no secondary indexes), in one transaction. SQLite: stdlib ``executemany`` into
the same shape, one transaction, with the service's pragmas (WAL, synchronous=NORMAL). Every ingest
figure is reported as a ratio to the ceiling measured in the same run on the same machine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from app.models.types import UTCDateTime
from bench.rows import FINDING_COLUMNS, FINDINGS_TABLE
from bench.server import pg_connect

CEILING_TABLE = "bench_ceiling"


@dataclass(slots=True)
class Ceiling:
    database: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def scratch_table(name: str = CEILING_TABLE) -> Table:
    """The findings table's columns, primary key and unique fingerprint; no other index."""
    columns = []
    for column in FINDINGS_TABLE.columns:
        copy: Column[Any] = column._copy()
        copy.index = None
        columns.append(copy)
    return Table(name, MetaData(), *columns)


def copy_rows(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Stream tuples into ``table`` with one COPY; returns the number of rows."""
    count = 0
    names = ", ".join(f'"{name}"' for name in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def postgres_ceiling(url: str, rows: Sequence[Sequence[Any]]) -> Ceiling:
    """``rows``: findings rows as values in ``FINDING_COLUMNS`` order."""
    ddl = str(CreateTable(scratch_table()).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    with pg_connect(url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {CEILING_TABLE}")
        conn.execute(ddl)
        conn.commit()
        began = time.perf_counter()
        with conn.cursor() as cursor:
            count = copy_rows(cursor, CEILING_TABLE, FINDING_COLUMNS, rows)
        conn.commit()
        seconds = time.perf_counter() - began
        conn.execute(f"DROP TABLE {CEILING_TABLE}")
        conn.commit()
    return Ceiling("postgresql", count, seconds)


_DATETIME_POSITIONS = [i for i, c in enumerate(FINDINGS_TABLE.columns) if isinstance(c.type, UTCDateTime)]


def _sqlite_row(row: Sequence[Any]) -> tuple[Any, ...]:
    values = list(row)
    for i in _DATETIME_POSITIONS:  # naive UTC text, what the service's UTCDateTime stores on SQLite
        if isinstance(values[i], str):
            values[i] = (
                datetime.fromisoformat(values[i]).astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
            )
    return tuple(values)


def sqlite_ceiling(path: Path, rows: Sequence[Sequence[Any]]) -> Ceiling:
    tuples = [_sqlite_row(row) for row in rows]
    ddl = str(CreateTable(scratch_table()).compile(dialect=sqlite.dialect()))  # type: ignore[no-untyped-call]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(ddl)
        names = ", ".join(f'"{name}"' for name in FINDING_COLUMNS)
        marks = ", ".join("?" for _ in FINDING_COLUMNS)
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(f"INSERT INTO {CEILING_TABLE} ({names}) VALUES ({marks})", tuples)
        conn.execute("COMMIT")
        seconds = time.perf_counter() - began
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Ceiling("sqlite", len(tuples), seconds)
