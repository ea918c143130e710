"""Test fixtures: every API test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL comes from TOCSIN_TEST_DATABASE_URL (default the local server). When it cannot be reached the
suite fails with a message saying so; it never silently skips. Set TOCSIN_TEST_BACKENDS=sqlite to run
SQLite only on a machine without PostgreSQL (CI never does).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app import migrations
from app.auth import create_token
from app.db import create_db_engine, sync_database_url, unit_of_work
from app.main import create_app
from app.settings import Settings, load_settings

PG_URL = os.environ.get("TOCSIN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [
    b.strip() for b in os.environ.get("TOCSIN_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()
]
ADMIN_TOKEN = "tcn_test-admin-token-0123456789abcdefghijklmnopqrstuvwxyz"
# Children before parents (foreign keys).
TABLES = (
    "deliveries",
    "notifications",
    "notification_groups",
    "channels",
    "routing_rules",
    "silences",
    "teams",
    "finding_events",
    "finding_aliases",
    "findings",
    "audit_log",
    "api_tokens",
)


def _create_pg_database() -> tuple[str, str]:
    """A fresh database next to the configured one; returns (url, admin url)."""
    base = make_url(sync_database_url(PG_URL))
    name = f"tocsin_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL tests cannot run: {PG_URL} is unreachable or refuses CREATE DATABASE ({exc}). "
            "Start PostgreSQL or set TOCSIN_TEST_DATABASE_URL.",
            pytrace=False,
        )
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(name: str) -> None:
    admin = create_engine(make_url(sync_database_url(PG_URL)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database per backend, shared by the session; tests empty it before they run."""
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("sqlite")) / "tocsin.db"
        url = f"sqlite:///{path}"
        engine = create_db_engine(load_settings(database_url=url))
        migrations.upgrade(engine)
        engine.dispose()
        yield url
        return
    url, name = _create_pg_database()
    engine = create_db_engine(load_settings(database_url=url))
    migrations.upgrade(engine)
    engine.dispose()
    yield url
    _drop_pg_database(name)


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, bootstrap_token=ADMIN_TOKEN, log_json=False)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    with unit_of_work(engine) as session:
        create_token(session, "test-admin", ["admin"], value=ADMIN_TOKEN)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    app = create_app(settings, engine)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def anon(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """A client that sends no token."""
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def token_for(engine: Engine) -> Any:
    """Create a token with the given scopes; returns the Authorization header."""

    def make(*scopes: str, name: str | None = None) -> dict[str, str]:
        with unit_of_work(engine) as session:
            _, secret = create_token(session, name or f"t-{uuid.uuid4().hex[:8]}", list(scopes))
        return {"Authorization": f"Bearer {secret}"}

    return make


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port, for tests with concurrent clients."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", log_config=None
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
