"""Abuse limits: per-token request rates (ingest, read), concurrent ingests per token, request timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

import app.api.findings
from app.api.limits import RateLimiter
from app.auth import Principal
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, _free_port
from tests.helpers import finding, post


@pytest.fixture
def limited(settings: Settings, engine: Engine) -> Iterator[Any]:
    """A TestClient (admin token) of an app with some settings changed."""
    with ExitStack() as stack:

        def make(**changes: Any) -> TestClient:
            app = create_app(settings.model_copy(update=changes), engine)
            client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            return stack.enter_context(client)

        yield make


@contextmanager
def served(settings: Settings, engine: Engine, **changes: Any) -> Iterator[str]:
    """The app under a real uvicorn (what clients in parallel and slow uploads need)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings.model_copy(update=changes), engine),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=None,
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


def assert_limited(resp: Any, variable: str) -> int:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["code"] == "rate_limited" and variable in body["detail"]
    retry_after = int(resp.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


# rates


def test_read_rate_answers_429_with_retry_after_past_the_limit(limited: Any, token_for: Any) -> None:
    client = limited(rate_limit_read_per_minute=3)
    reader = token_for("read")
    for _ in range(3):
        assert client.get("/v1/stats", headers=reader).status_code == 200
    refused = client.get("/v1/findings", headers=reader)
    assert 1 <= assert_limited(refused, "TOCSIN_RATE_LIMIT_READ_PER_MINUTE") <= 20  # one request = 20 s
    assert "3 requests per minute" in refused.json()["detail"]
    assert refused.headers["X-Request-ID"]
    # Per token: another token, and the admin, still read.
    assert client.get("/v1/stats", headers=token_for("read")).status_code == 200
    assert client.get("/v1/stats").status_code == 200


def test_ingest_rate_is_counted_apart_from_reads(limited: Any, token_for: Any) -> None:
    client = limited(rate_limit_ingest_per_minute=2, rate_limit_read_per_minute=100)
    pipeline = token_for("ingest", "read")
    for index in range(2):
        assert post(client, finding(type=f"CVE-{index}"), headers=pipeline).status_code == 200
    refused = post(client, finding(type="CVE-9"), headers=pipeline)
    assert_limited(refused, "TOCSIN_RATE_LIMIT_INGEST_PER_MINUTE")
    report = client.post("/v1/ingest/native", json={"findings": [finding(type="CVE-9")]}, headers=pipeline)
    assert_limited(report, "TOCSIN_RATE_LIMIT_INGEST_PER_MINUTE")
    assert client.get("/v1/stats", headers=pipeline).json()["total"] == 2  # the refused ones stored nothing
    assert post(client, finding(type="CVE-9")).status_code == 200  # the admin's own budget


def test_triage_and_admin_endpoints_are_not_rate_limited(limited: Any) -> None:
    client = limited(rate_limit_read_per_minute=1)
    for _ in range(5):
        assert client.get("/v1/tokens").status_code == 200


def test_zero_disables_the_rate_limits(limited: Any) -> None:
    client = limited(rate_limit_read_per_minute=0, rate_limit_ingest_per_minute=0)
    for _ in range(30):
        assert client.get("/v1/stats").status_code == 200
    for index in range(10):
        assert post(client, finding(type=f"CVE-{index}")).status_code == 200


def test_a_bucket_refills_evenly_and_says_how_long_to_wait() -> None:
    now = [1000.0]
    limiter = RateLimiter(60, "read", "X", clock=lambda: now[0])  # one a second, bursts of 60
    assert all(limiter.wait_for("t") == 0 for _ in range(60))
    assert limiter.wait_for("t") == pytest.approx(1.0)
    now[0] += 0.5
    assert limiter.wait_for("t") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.wait_for("t") == 0
    assert limiter.wait_for("other") == 0  # per key
    now[0] += 3600
    assert all(limiter.wait_for("t") == 0 for _ in range(60))  # full again, never above capacity
    assert limiter.wait_for("t") > 0


def test_default_limits_stay_out_of_the_way(settings: Settings) -> None:
    assert settings.rate_limit_ingest_per_minute >= 6000
    assert settings.rate_limit_read_per_minute >= 12000
    assert settings.max_concurrent_ingest_per_token >= 8  # tests/api/test_concurrency.py runs 8 clients
    assert settings.request_timeout_seconds >= 120


# concurrent ingests


@pytest.fixture
def held_ingest(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """POST /v1/findings blocks inside the endpoint until ``release`` is set; ``entered`` says it is."""
    entered, release = threading.Event(), threading.Event()
    validate = app.api.findings.validate_items

    def slow_validate(items: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return validate(items)

    monkeypatch.setattr(app.api.findings, "validate_items", slow_validate)
    yield entered, release
    release.set()


def test_concurrent_ingests_past_the_cap_are_429_retry_after_1(
    settings: Settings, engine: Engine, token_for: Any, held_ingest: Any
) -> None:
    entered, release = held_ingest
    pipeline = token_for("ingest", "read")
    with served(settings, engine, max_concurrent_ingest_per_token=1) as url:
        results: list[httpx.Response] = []
        first = threading.Thread(
            target=lambda: results.append(
                httpx.post(f"{url}/v1/findings", json={"findings": [finding()]}, headers=pipeline, timeout=30)
            )
        )
        first.start()
        assert entered.wait(10)
        refused = httpx.post(
            f"{url}/v1/ingest/native",
            json={"findings": [finding(type="CVE-2")]},
            headers=pipeline,
            timeout=30,
        )
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["code"] == "rate_limited"
        assert "TOCSIN_MAX_CONCURRENT_INGEST_PER_TOKEN" in refused.json()["detail"]
        # Another token, and reads by the same one, are not held up.
        other = httpx.post(
            f"{url}/v1/ingest/native", json={"findings": [finding(type="CVE-3")]}, headers=token_for("ingest")
        )
        assert other.status_code == 200, other.text
        assert httpx.get(f"{url}/v1/stats", headers=pipeline).status_code == 200
        release.set()
        first.join(30)
        assert results[0].status_code == 200, results[0].text
        # The slot is given back when the request ends.
        again = httpx.post(
            f"{url}/v1/ingest/native",
            json={"findings": [finding(type="CVE-2")]},
            headers=pipeline,
            timeout=30,
        )
        assert again.status_code == 200, again.text


def test_a_refused_ingest_gives_its_slot_back(limited: Any, token_for: Any) -> None:
    client = limited(max_concurrent_ingest_per_token=1)
    pipeline = token_for("ingest")
    assert post(client, {"source": "trivy"}, headers=pipeline).status_code == 200  # item-level failure
    assert client.post("/v1/findings", content=b"{", headers=pipeline).status_code == 422
    assert post(client, finding(), headers=pipeline).status_code == 200
    assert client.app.state.limits.concurrent_ingest.active("anything") == 0
    principal = Principal(token_id="x", name="x", scopes=frozenset({"ingest"}))
    with client.app.state.limits.concurrent_ingest.slot(principal):
        assert client.app.state.limits.concurrent_ingest.active("x") == 1
    assert client.app.state.limits.concurrent_ingest.active("x") == 0


# timeouts


def test_a_stalled_upload_is_answered_408_and_nothing_is_stored(
    settings: Settings, engine: Engine, token_for: Any
) -> None:
    secret = token_for("ingest")["Authorization"]
    head = (
        "POST /v1/findings HTTP/1.1\r\nHost: tocsin\r\nContent-Type: application/json\r\n"
        f"Authorization: {secret}\r\nContent-Length: 4096\r\n\r\n"
    )
    with served(settings, engine, request_timeout_seconds=0.5) as url:
        host, port = url.removeprefix("http://").split(":")
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head.encode() + b'{"findings": [')  # ... and the rest never comes
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        elapsed = time.monotonic() - started
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 408"), answer
        assert 0.4 < elapsed < 5  # answered at the timeout, then the connection was closed
        head_part, _, body = rest.partition(b"\r\n\r\n")
        assert b"x-request-id" in head_part.lower()
        error = json.loads(body)
        assert error["code"] == "timeout" and "TOCSIN_REQUEST_TIMEOUT_SECONDS" in error["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200  # the service carries on
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM findings")).scalar_one() == 0


@pytest.mark.parametrize("path", ["/v1/findings", "/v1/ingest/trivy", "/v1/ingest/eventbridge"])
def test_a_refused_caller_is_answered_before_its_body_is_read(
    settings: Settings, engine: Engine, token_for: Any, path: str
) -> None:
    callers = {"Bearer tcn_unknown": 401, token_for("read")["Authorization"]: 403}
    with served(settings, engine, request_timeout_seconds=0) as url:
        host, port = url.removeprefix("http://").split(":")
        for authorization, status in callers.items():
            head = (
                f"POST {path} HTTP/1.1\r\nHost: tocsin\r\nContent-Type: application/json\r\n"
                f"Authorization: {authorization}\r\nContent-Length: 5000000\r\n\r\n"
            )
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(head.encode() + b"[")  # 5 MB announced (within the limits), one byte sent
                answer = sock.recv(65536)
            assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer


def test_slow_processing_is_answered_504_at_once_and_the_work_is_not_torn(
    settings: Settings, engine: Engine, held_ingest: Any
) -> None:
    entered, release = held_ingest
    with served(settings, engine, request_timeout_seconds=0.5, max_concurrent_ingest_per_token=1) as url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        started = time.monotonic()
        resp = httpx.post(f"{url}/v1/findings", json={"findings": [finding()]}, headers=headers, timeout=30)
        assert resp.status_code == 504, resp.text
        assert time.monotonic() - started < 5
        assert entered.is_set()
        assert resp.json()["code"] == "timeout" and "may still complete" in resp.json()["detail"]
        # The work still holds the token's ingest slot: an immediate retry cannot pile up behind it.
        retry = httpx.post(f"{url}/v1/findings", json={"findings": [finding()]}, headers=headers, timeout=30)
        assert retry.status_code == 429
        release.set()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v1/stats", headers=headers).json()["total"] != 1:
            assert time.monotonic() < deadline, "the work under way never finished"
            time.sleep(0.05)
        # Finished, whole; the slot is free again and the repeat is recognised.
        after = httpx.post(f"{url}/v1/findings", json={"findings": [finding()]}, headers=headers, timeout=30)
        assert after.status_code == 200 and after.json()["unchanged"] == 1


def test_requests_within_the_timeout_are_untouched(limited: Any) -> None:
    client = limited(request_timeout_seconds=5)
    assert post(client, finding()).status_code == 200
    assert client.get("/v1/stats").json()["total"] == 1
