"""Security headers on every response, CORS for configured origins only, no ``Server`` banner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.main import create_app
from app.settings import Settings, SettingsError, load_settings
from tests.conftest import ADMIN_TOKEN

CONSOLE = "https://console.example.com"
BASELINE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def client_with(settings: Settings, engine: Engine, **changes: Any) -> TestClient:
    app = create_app(settings.model_copy(update=changes), engine)
    return TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture
def cors(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with client_with(settings, engine, cors_origins=[CONSOLE]) as client:
        yield client


def assert_hardened(resp: Any) -> None:
    for name, value in BASELINE.items():
        assert resp.headers.get(name) == value, (name, resp.request.url)
    assert "strict-transport-security" not in resp.headers  # off unless TOCSIN_HSTS


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/stats", 200),
        ("GET", "/v1/findings/nope", 404),
        ("GET", "/no/such/path", 404),
        ("POST", "/v1/findings", 422),
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_response_carries_the_headers(client: Any, method: str, path: str, status: int) -> None:
    resp = client.request(method, path, content=b"{" if method == "POST" else None)
    assert resp.status_code == status
    assert_hardened(resp)
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_errors_answered_by_middleware_carry_them_too(anon: Any, settings: Settings, engine: Engine) -> None:
    assert_hardened(anon.get("/v1/stats"))  # 401
    with client_with(settings, engine, max_body_bytes=1024) as small:
        too_large = small.post("/v1/findings", content=b"x" * 4096)
        assert too_large.status_code == 413
        assert_hardened(too_large)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_get_a_policy_that_lets_their_scripts_run(anon: Any, path: str) -> None:
    resp = anon.get(path)
    assert resp.status_code == 200
    assert_hardened(resp)
    csp = dict(part.strip().split(" ", 1) for part in resp.headers["content-security-policy"].split(";"))
    assert "frame-ancestors" in csp and csp["frame-ancestors"] == "'none'"
    for src in re.findall(r'(?:src|href)="(https://[^/"]+)', resp.text):
        assert src in csp["script-src"] or src in csp["style-src"] or src in csp["img-src"], src
    assert "'unsafe-inline'" in csp["script-src"]  # FastAPI starts the UI with an inline script


def test_hsts_when_configured(settings: Settings, engine: Engine) -> None:
    with client_with(settings, engine, hsts=True) as client:
        for resp in (client.get("/v1/stats"), client.get("/healthz"), client.get("/docs")):
            assert resp.headers["strict-transport-security"].startswith("max-age=31536000")


# CORS


def test_cors_is_off_by_default(client: Any) -> None:
    preflight = client.options(
        "/v1/findings", headers={"Origin": CONSOLE, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in client.get("/v1/stats", headers={"Origin": CONSOLE}).headers


def test_preflight_from_a_configured_origin_is_allowed(cors: Any) -> None:
    preflight = cors.options(
        "/v1/findings",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers
    assert_hardened(preflight)


def test_preflight_from_another_origin_is_refused(cors: Any) -> None:
    preflight = cors.options(
        "/v1/findings",
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def test_a_cross_origin_request_sees_its_request_id(cors: Any) -> None:
    resp = cors.get("/v1/stats", headers={"Origin": CONSOLE})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == CONSOLE
    assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    other = cors.get("/v1/stats", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_settings_refuse_a_wildcard_with_credentials() -> None:
    with pytest.raises(SettingsError, match=r"TOCSIN_CORS_ORIGINS: '\*' cannot be combined"):
        load_settings(cors_origins="*", cors_allow_credentials=True)
    assert load_settings(cors_origins="*").cors_origins == ["*"]
    listed = load_settings(cors_origins=f"{CONSOLE}/, http://localhost:3000", cors_allow_credentials=True)
    assert listed.cors_origins == [CONSOLE, "http://localhost:3000"]


@pytest.mark.parametrize(
    "origin", ["console.example.com", "https://console.example.com/app", "ftp://x.example"]
)
def test_cors_settings_refuse_what_is_not_an_origin(origin: str) -> None:
    with pytest.raises(SettingsError, match=r"TOCSIN_CORS_ORIGINS: .* is not an origin"):
        load_settings(cors_origins=origin)


# Server header, on the real `tocsin serve`


def test_tocsin_serve_sends_no_server_banner(tmp_path: Path) -> None:
    from tests.test_cli import clean_env, serving

    env = clean_env(
        TOCSIN_DATABASE_URL=f"sqlite:///{tmp_path / 'tocsin.db'}", TOCSIN_DISPATCHER_EMBEDDED="false"
    )
    with serving(tmp_path, env) as server:
        for path in ("/healthz", "/v1/stats", "/no/such/path"):
            resp = httpx.get(f"{server.url}{path}", timeout=30)
            assert "server" not in resp.headers, resp.headers
            assert resp.headers["x-content-type-options"] == "nosniff"
        assert server.stop() == 0
