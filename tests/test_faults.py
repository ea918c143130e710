"""Faults the service must survive: the database dropping every connection while clients ingest, the API
process killed mid-batch, and a SQLite database that turns read-only.

The PostgreSQL tests ask for the PostgreSQL database explicitly, so they run even when
TOCSIN_TEST_BACKENDS leaves it out, and fail (never skip) when it cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, NullPool, create_engine, text
from sqlalchemy.engine import make_url

from app import migrations
from app.auth import create_token
from app.db import create_db_engine, sync_database_url, unit_of_work
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, _free_port
from tests.helpers import finding
from tests.test_cli import clean_env, serving

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
only_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@contextmanager
def running(settings: Settings, engine: Engine) -> Iterator[str]:
    """The app under uvicorn in a thread, on an engine the test controls (so it can dispose its pool)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning", log_config=None
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def count_where(engine: Engine, column: str, values: list[str]) -> int:
    total = 0
    with engine.connect() as conn:
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            names = ", ".join(f":v{i}" for i in range(len(part)))
            total += conn.execute(
                text(f"SELECT COUNT(*) FROM findings WHERE {column} IN ({names})"),
                {f"v{i}": value for i, value in enumerate(part)},
            ).scalar_one()
    return total


# (a) PostgreSQL drops every connection while clients ingest


def _terminate_backends(admin: Engine, database: str) -> int:
    with admin.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).all()
        )


@only_postgresql
def test_terminated_connections_answer_503_then_recover_and_lose_nothing_acknowledged(
    settings: Settings, engine: Engine
) -> None:
    database = str(make_url(settings.database_url).database)
    admin = create_engine(
        make_url(sync_database_url(settings.database_url)).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    app_engine = create_db_engine(settings)
    acknowledged: list[str] = []
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    outage_over = threading.Event()
    stop = threading.Event()
    after_outage: Counter[int] = Counter()

    def client(worker: int, url: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=15) as http:
            n = 0
            while not stop.is_set():
                ids = [f"fault-{worker}-{n}-{i}" for i in range(5)]
                n += 1
                recovered = outage_over.is_set()  # sent after the last outage ended
                try:
                    resp = http.post(
                        "/v1/findings", json={"findings": [finding(resource={"id": rid}) for rid in ids]}
                    )
                except httpx.TransportError as exc:  # the server must answer, not drop the connection
                    with lock:
                        problems.append(f"transport error: {exc!r}")
                    continue
                with lock:
                    statuses[resp.status_code] += 1
                    if recovered:
                        after_outage[resp.status_code] += 1
                    if resp.status_code == 200:
                        acknowledged.extend(ids)
                    elif resp.status_code == 503:
                        if not resp.headers.get("Retry-After", "").isdigit():
                            problems.append(f"503 without Retry-After: {resp.headers}")
                        if "database" not in resp.json()["detail"]:
                            problems.append(f"503 without a clear reason: {resp.text}")
                    else:
                        problems.append(f"{resp.status_code}: {resp.text[:300]}")

    try:
        with running(settings, app_engine) as url:
            workers = [threading.Thread(target=client, args=(w, url)) for w in range(4)]
            for worker in workers:
                worker.start()
            terminated = 0
            for _ in range(15):  # 3 s of outages, one every 0.2 s
                time.sleep(0.2)
                terminated += _terminate_backends(admin, database)
            time.sleep(0.3)  # answers to requests in flight during the last outage
            outage_over.set()
            time.sleep(2.0)  # the service recovers by itself
            stop.set()
            for worker in workers:
                worker.join(30)
            with httpx.Client(base_url=url, headers=AUTH, timeout=15) as http:
                assert http.get("/readyz").status_code == 200
    finally:
        app_engine.dispose()
        admin.dispose()
    assert terminated > 0
    assert problems == [], problems[:5]
    assert statuses[200] > 0 and statuses[503] > 0, statuses  # the outage was seen, and survived
    assert after_outage[200] > 0 and set(after_outage) == {200}, after_outage
    assert count_where(engine, "resource_id", acknowledged) == len(acknowledged)


# (b) the API process is killed mid-batch


def _transaction_in_flight(engine: Engine, backend: str, database: str, wal: Path) -> bool:
    """The server has a write transaction open (PostgreSQL), or has started writing pages (SQLite WAL)."""
    if backend == "sqlite":
        return wal.exists() and wal.stat().st_size > 0
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() "
                    "AND xact_start IS NOT NULL AND query ILIKE '%findings%'"
                ),
                {"db": database},
            ).scalar_one()
        )


@pytest.mark.parametrize("when", ["mid-transaction", "early"])
def test_sigkill_mid_batch_stores_the_whole_batch_or_nothing(
    tmp_path: Path, settings: Settings, engine: Engine, backend: str, when: str
) -> None:
    env = clean_env(
        TOCSIN_DATABASE_URL=settings.database_url,
        TOCSIN_BOOTSTRAP_TOKEN=ADMIN_TOKEN,
        TOCSIN_DISPATCHER_EMBEDDED="false",
        TOCSIN_LOG_LEVEL="WARNING",
    )
    database = str(make_url(settings.database_url).database)
    wal = Path(f"{database}-wal")
    marker = uuid.uuid4().hex[:8]
    ids = [f"kill-{marker}-{i}" for i in range(1000)]
    batch = {"findings": [finding(resource={"id": rid}, title=f"finding {i}") for i, rid in enumerate(ids)]}
    answer: list[Any] = []
    with serving(tmp_path, env, label=f"kill-{when}") as server:
        engine.dispose()  # checkpoint: an empty WAL, so a growing one means the server is writing

        def send() -> None:
            try:
                answer.append(httpx.post(f"{server.url}/v1/findings", json=batch, headers=AUTH, timeout=30))
            except httpx.TransportError as exc:
                answer.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        if when == "early":
            time.sleep(0.05)
        else:
            deadline = time.monotonic() + 10
            while not _transaction_in_flight(engine, backend, database, wal):
                assert time.monotonic() < deadline and sender.is_alive(), "never saw the batch being written"
                time.sleep(0.005)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        sender.join(30)
    stored = count_where(engine, "resource_id", ids)
    assert stored in (0, len(ids)), f"{stored} of {len(ids)} findings stored: a batch was half-stored"
    if isinstance(answer[0], httpx.Response):
        assert answer[0].status_code == 200 and stored == len(ids)  # answered before the kill: it is there
    else:
        assert stored == 0 if when == "early" else stored in (0, len(ids))
    if backend == "sqlite":
        engine.dispose()
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# (c) SQLite turns read-only


def _chattr(flag: str, *paths: Path) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    result = subprocess.run([chattr, flag, *map(str, paths)], capture_output=True, check=False)
    return result.returncode == 0


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make the database directory and its files unwritable: permissions for an ordinary user; for root,
    whom permissions do not stop, the immutable attribute."""
    paths = [*sorted(directory.iterdir()), directory]
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if not _chattr("+i", *paths):
        pytest.skip("running as root on a filesystem without chattr +i: cannot make SQLite read-only")
    try:
        yield
    finally:
        _chattr("-i", *paths)


@only_sqlite
def test_read_only_sqlite_reports_at_readyz_refuses_writes_with_503_and_is_not_corrupted(
    tmp_path: Path, settings: Settings
) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    ro_settings = settings.model_copy(update={"database_url": f"sqlite:///{directory / 'tocsin.db'}"})
    engine = create_db_engine(ro_settings)
    migrations.upgrade(engine)
    with unit_of_work(engine) as session:
        create_token(session, "test-admin", ["admin"], value=ADMIN_TOKEN)
    try:
        with (
            running(ro_settings, engine) as url,
            httpx.Client(base_url=url, headers=AUTH, timeout=40) as http,
        ):
            before = http.post("/v1/findings", json={"findings": [finding(resource={"id": "before-ro"})]})
            assert before.status_code == 200, before.text
            fid = before.json()["results"][0]["id"]
            engine.dispose()  # let SQLite checkpoint and close its files before they turn read-only
            with read_only(directory):
                engine.dispose()
                ready = http.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert "read-only" in ready.json()["detail"], ready.text
                assert ready.headers["Retry-After"].isdigit()
                write = http.post("/v1/findings", json={"findings": [finding(resource={"id": "during-ro"})]})
                assert write.status_code == 503, write.text
                assert write.headers["Retry-After"].isdigit()
                assert "read-only" in write.json()["detail"], write.text
                assert "Traceback" not in write.text and str(directory) not in write.text
            engine.dispose()
            assert http.get("/readyz").status_code == 200
            assert http.get(f"/v1/findings/{fid}").status_code == 200
            after = http.post("/v1/findings", json={"findings": [finding(resource={"id": "after-ro"})]})
            assert after.status_code == 200, after.text
    finally:
        engine.dispose()
    with sqlite3.connect(directory / "tocsin.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = {row[0] for row in conn.execute("SELECT resource_id FROM findings")}
    assert {"before-ro", "after-ro"} <= ids and "during-ro" not in ids
