"""The ``tocsin`` command, run as a real subprocess: migrate, tokens, serve."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import cli, migrations
from app.auth import create_token
from app.db import create_db_engine, sync_database_url, unit_of_work
from app.main import create_app
from app.settings import load_settings
from tests.helpers import finding

TOCSIN = [sys.executable, "-m", "app.cli"]
ADMIN_BANNER_TOKEN = re.compile(r"Authorization: Bearer (tcn_[A-Za-z0-9_-]+)")


def clean_env(**variables: str) -> dict[str, str]:
    """This process's environment without any TOCSIN_* variable, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    env.update(variables)
    return env


def run_tocsin(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOCSIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_actors(engine: Engine, action: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT actor, target_id FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [(row.actor, row.target_id) for row in rows]


@pytest.fixture
def fresh_database_url(backend: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema at all) on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"tocsin_cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(sync_database_url(database_url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(sync_database_url(database_url)).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    """A migrated SQLite file of its own, for the error paths (one backend is enough there)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_db_engine(load_settings(database_url=url))
    migrations.upgrade(engine)
    engine.dispose()
    return url


# migrate


def test_migrate_creates_the_schema(fresh_database_url: str, tmp_path: Path) -> None:
    result = run_tocsin("migrate", env=clean_env(TOCSIN_DATABASE_URL=fresh_database_url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    engine = create_db_engine(load_settings(database_url=fresh_database_url))
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"findings", "finding_events", "finding_aliases", "api_tokens", "audit_log"} <= tables
        assert migrations.schema_drift(engine) == []
    finally:
        engine.dispose()


def test_commands_before_migrate_say_what_to_do(tmp_path: Path) -> None:
    env = clean_env(TOCSIN_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    result = run_tocsin("tokens", "create", "--name", "early", "--scope", "read", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "tocsin migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


# tokens create / revoke (both backends, checked over HTTP against the real app)


def test_tokens_create_prints_the_token_alone_and_it_has_its_scope(
    database_url: str, anon: Any, engine: Engine, tmp_path: Path
) -> None:
    env = clean_env(TOCSIN_DATABASE_URL=database_url)
    result = run_tocsin("tokens", "create", "--name", "trivy-ci", "--scope", "ingest", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.removesuffix("\n")
    assert result.stdout == token + "\n"
    assert re.fullmatch(r"tcn_[A-Za-z0-9_-]{40,}", token)
    assert anon.post("/v1/findings", json={"findings": [finding()]}, headers=bearer(token)).status_code == 200
    assert anon.get("/v1/findings", headers=bearer(token)).status_code == 403
    assert audit_actors(engine, "token.create") == [("cli", "trivy-ci")]


def test_tokens_create_takes_several_scopes(migrated_sqlite: str, tmp_path: Path) -> None:
    env = clean_env(TOCSIN_DATABASE_URL=migrated_sqlite)
    args = ["tokens", "create", "--name", "ci", "--scope", "ingest", "--scope", "read"]
    result = run_tocsin(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headers = bearer(result.stdout.strip())
    with TestClient(create_app(load_settings(database_url=migrated_sqlite))) as anon:
        assert anon.get("/v1/findings", headers=headers).status_code == 200
        assert anon.post("/v1/findings", json={"findings": [finding()]}, headers=headers).status_code == 200
        assert anon.patch("/v1/findings/x", json={"status": "resolved"}, headers=headers).status_code == 403


def test_tokens_revoke_makes_the_token_401(
    database_url: str, anon: Any, token_for: Any, engine: Engine, tmp_path: Path
) -> None:
    headers = token_for("read", name="old-ci")
    assert anon.get("/v1/stats", headers=headers).status_code == 200
    result = run_tocsin(
        "tokens", "revoke", "old-ci", env=clean_env(TOCSIN_DATABASE_URL=database_url), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert anon.get("/v1/stats", headers=headers).status_code == 401
    assert audit_actors(engine, "token.revoke") == [("cli", "old-ci")]


def test_revoking_an_unknown_token_fails_with_a_message(migrated_sqlite: str, tmp_path: Path) -> None:
    result = run_tocsin(
        "tokens", "revoke", "ghost", env=clean_env(TOCSIN_DATABASE_URL=migrated_sqlite), cwd=tmp_path
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr == "tocsin: no token named 'ghost'\n"


def test_creating_a_token_under_a_taken_name_fails_and_prints_no_token(
    migrated_sqlite: str, tmp_path: Path
) -> None:
    engine = create_db_engine(load_settings(database_url=migrated_sqlite))
    with unit_of_work(engine) as session:
        create_token(session, "twin", ["read"])
    engine.dispose()
    env = clean_env(TOCSIN_DATABASE_URL=migrated_sqlite)
    again = run_tocsin("tokens", "create", "--name", "twin", "--scope", "read", env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout == ""
    assert "already exists" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "has space", "--scope", "read"], "token name 'has space'"),
        (["--name", "x", "--scope", "root"], "invalid choice: 'root'"),
        (["--name", "x", "--scope", "read", "--expires-at", "soon"], "not an ISO 8601 time"),
    ],
)
def test_invalid_token_arguments_are_refused(
    migrated_sqlite: str, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_tocsin(
        "tokens", "create", *args, env=clean_env(TOCSIN_DATABASE_URL=migrated_sqlite), cwd=tmp_path
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert message in result.stderr


# serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], label: str = "serve") -> Iterator[Served]:
    """``tocsin serve`` on a free port; yields once it answers /readyz, kills it if still running."""
    port = _free_port()
    out, err = tmp_path / f"{label}.out", tmp_path / f"{label}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*TOCSIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
    served = Served(f"http://127.0.0.1:{port}", process, out, err)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"tocsin serve exited with {process.returncode}:\n{served.stderr()}")
            try:
                if httpx.get(f"{served.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tocsin serve did not become ready:\n{served.stderr()}")
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_newcomer_serves_ingests_twice_stops_cleanly_and_restarts(tmp_path: Path) -> None:
    env = clean_env(TOCSIN_DATABASE_URL=f"sqlite:///{tmp_path / 'tocsin.db'}")
    with serving(tmp_path, env, "first") as first:
        found = ADMIN_BANNER_TOKEN.findall(first.stderr())
        assert len(found) == 1, first.stderr()
        headers = {**bearer(found[0]), "X-Request-ID": "newcomer-1"}
        with httpx.Client(base_url=first.url, headers=headers, timeout=30) as http:
            assert 'tocsin_findings_ingested_total{outcome="created"} 0.0' in http.get("/metrics").text
            created = http.post("/v1/findings", json={"findings": [finding()]})
            assert created.status_code == 200, created.text
            assert http.post("/v1/findings", json={"findings": [finding()]}).json()["unchanged"] == 1
            finding_id = created.json()["results"][0]["id"]
            assert http.get(f"/v1/findings/{finding_id}").json()["occurrences"] == 2
        assert first.stop(signal.SIGTERM) == 0
    stderr = first.stderr()
    assert first.stdout() == ""
    assert "Traceback" not in stderr
    secret_lines = [line for line in stderr.splitlines() if found[0] in line]
    assert len(secret_lines) == 2  # the banner only (token and usage), never a log line
    assert all(not line.startswith("{") for line in secret_lines)
    access = [line for line in stderr.splitlines() if '"request_id":"newcomer-1"' in line]
    assert len(access) == 4

    with serving(tmp_path, env, "second") as second:
        assert "tcn_" not in second.stderr()
        again = httpx.get(f"{second.url}/v1/findings/{finding_id}", headers=bearer(found[0]), timeout=30)
        assert again.json()["occurrences"] == 2
        assert second.stop(signal.SIGINT) == 0
    assert "Traceback" not in second.stderr()


def test_bootstrap_token_from_the_environment_is_an_admin(tmp_path: Path) -> None:
    value = f"tcn_chosen-by-the-operator-{uuid.uuid4().hex}"
    env = clean_env(TOCSIN_DATABASE_URL=f"sqlite:///{tmp_path / 'tocsin.db'}", TOCSIN_BOOTSTRAP_TOKEN=value)
    with serving(tmp_path, env) as server:
        resp = httpx.get(f"{server.url}/v1/tokens", headers=bearer(value), timeout=30)
        assert resp.status_code == 200
        assert [item["name"] for item in resp.json()] == ["bootstrap-admin"]
        assert server.stop() == 0
        assert "tcn_" not in server.stderr()  # neither a generated token nor the given one


def test_replicas_starting_together_do_not_crash_on_the_first_admin_token(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `tocsin serve` does before it listens, run by four "replicas" at once on an empty token table.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM api_tokens"))
    settings = load_settings(database_url=database_url)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start_replica() -> None:
        barrier.wait()
        try:
            cli._ensure_admin(settings)
        except BaseException as exc:
            errors.append(exc)

    replicas = [threading.Thread(target=start_replica) for _ in range(4)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join()
    assert errors == []
    printed = ADMIN_BANNER_TOKEN.findall(capsys.readouterr().err)
    with engine.connect() as conn:
        scopes = [row.scopes for row in conn.execute(text("SELECT scopes FROM api_tokens"))]
    assert 1 <= len(printed) == len(scopes)
