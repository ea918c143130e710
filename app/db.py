"""Engine factory and the unit of work.

The edge owns the transaction: the request's session dependency (app.api.deps) and the CLI open a
``unit_of_work`` which commits on success and rolls back on error. Nothing below it commits.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.settings import Settings

T = TypeVar("T")
READ_ONLY_OPTION = "tocsin_read_only"


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def sync_database_url(url: str) -> str:
    """The service talks to PostgreSQL through psycopg 3; an asyncpg URL is accepted and mapped."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+asyncpg", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_db_engine(settings: Settings) -> Engine:
    url = sync_database_url(settings.database_url)
    if settings.is_sqlite:
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            json_serializer=_json_serializer,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        json_serializer=_json_serializer,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below issue BEGIN itself (pysqlite's own handling is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on a lock upgrade;
        # read-only work (see read_only()) uses a deferred BEGIN and never waits for writers (WAL).
        read = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def read_only(engine: Engine) -> Engine:
    """The same engine and pool, for transactions that only read."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    session = Session(engine, expire_on_commit=False, autoflush=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SQLITE_MIN_FREE_BYTES = 8 * 1024 * 1024
"""Below this much free space next to the SQLite file, /readyz says the disk is full (a batch needs a few MB)."""


def sqlite_write_problem(engine: Engine) -> str | None:
    """Why the SQLite database cannot take writes (read-only filesystem, file or directory not writable,
    disk full), checked on the filesystem without touching the database; None when it can, or not SQLite.

    Opening or querying a read-only SQLite file fails with messages that do not say why, and a probe write
    would queue behind real writers; these checks cost a few system calls."""
    if engine.dialect.name != "sqlite":
        return None
    path = _sqlite_file(str(engine.url))
    if path is None:
        return None
    directory = path.parent
    try:
        fs = os.statvfs(directory)
    except OSError:
        return "the database directory cannot be read"
    if fs.f_flag & os.ST_RDONLY:
        return "the database is read-only: its filesystem is mounted read-only"
    companions = (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm"), directory)
    if any(p.exists() and not os.access(p, os.W_OK) for p in companions):
        return "the database is read-only: its file or directory is not writable"
    if fs.f_bavail * fs.f_frsize < SQLITE_MIN_FREE_BYTES:
        return "the database's disk is full"
    return None


def describe_unavailable(exc: BaseException) -> str:
    """A fixed phrase for why the database refused (never its own message, which can quote values)."""
    message = str(getattr(exc, "orig", None) or exc).lower()
    if "readonly" in message or "read-only" in message:
        return "the database is read-only"
    if "disk is full" in message or "no space left" in message or "could not extend" in message:
        return "the database's disk is full"
    if "locked" in message:
        return "the database is busy (locked by another writer)"
    return "the database is unreachable"


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    return _sqlstate(exc) in RETRYABLE_SQLSTATES


_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


@contextmanager
def _writer_turn(engine: Engine) -> Iterator[None]:
    """SQLite has one writer at a time; its busy handler polls and is unfair, so under load some
    requests starved for seconds. Writers of this process queue on a lock instead (FIFO-ish, no polling);
    other processes still meet SQLite's busy timeout."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _sqlite_writers_guard:
        lock = _sqlite_writers.setdefault(engine, threading.Lock())
    with lock:
        yield


def run_transaction(engine: Engine, work: Callable[[Session], T], attempts: int) -> T:
    """Run ``work`` in one transaction, retrying the whole of it on a deadlock or serialization failure."""
    for attempt in range(1, attempts + 1):
        try:
            with _writer_turn(engine), unit_of_work(engine) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 (jitter, not crypto)
    raise AssertionError("unreachable")
