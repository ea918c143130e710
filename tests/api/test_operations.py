"""Operations: health and readiness, metrics, request ids, JSON logs, secrets kept out of logs and errors,
and the shape of every error response."""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from app.logs import JsonFormatter, request_id_var
from app.main import create_app
from app.settings import Settings, load_settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import finding, post

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/none"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def metric(client: Any, name: str, **labels: str) -> float:
    """The current value of one sample on /metrics (0 when it has not been counted yet)."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture
def json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Records of the ``tocsin`` loggers as our JsonFormatter writes them, parsed back."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tocsin")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(previous)


def app_without_database(path: Path) -> FastAPI:
    """A real app pointed at a database file that is never created (for behaviour that needs none)."""
    return create_app(load_settings(database_url=f"sqlite:///{path / 'unused.db'}", max_body_bytes=1024))


@pytest.fixture
def bare(tmp_path: Path) -> TestClient:
    """A client of an app that is never started (no lifespan, so no engine and no background upkeep),
    for what the middleware answers on its own. Runs once, not once per backend."""
    return TestClient(app_without_database(tmp_path))


# Health and readiness


def test_healthz_is_ok(anon: Any) -> None:
    resp = anon.get("/healthz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_answers(anon: Any) -> None:
    resp = anon.get("/readyz")
    assert (resp.status_code, resp.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("where", ["postgresql", "sqlite"])
def test_readyz_is_503_with_retry_after_when_the_database_does_not_answer(tmp_path: Path, where: str) -> None:
    # A directory is not a database file: SQLite cannot open it.
    url = UNREACHABLE_PG if where == "postgresql" else f"sqlite:///{tmp_path}"
    with TestClient(create_app(load_settings(database_url=url))) as anon:
        resp = anon.get("/readyz")
        assert resp.status_code == 503
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.json()["code"] == "unavailable"
        assert "127.0.0.1:1" not in resp.text and str(tmp_path) not in resp.text
        assert anon.get("/healthz").status_code == 200


def test_api_answers_503_with_retry_after_when_the_database_is_down() -> None:
    with TestClient(create_app(load_settings(database_url=UNREACHABLE_PG))) as anon:
        resp = anon.get("/v1/findings", headers={"Authorization": "Bearer tcn_whatever"})
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.json()["code"] == "unavailable"
    assert "tcn_whatever" not in resp.text


# Metrics


def test_metrics_are_prometheus_text(bare: TestClient) -> None:
    resp = bare.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(resp.text)}
    assert {"tocsin_http_requests", "tocsin_http_request_duration_seconds"} <= families


def test_requests_are_counted_by_route_template_and_status(client: Any) -> None:
    labels = {"method": "GET", "route": "/v1/findings/{finding_id}", "status": "404"}
    before = metric(client, "tocsin_http_requests_total", **labels)
    assert client.get("/v1/findings/no-such-id").status_code == 404
    assert metric(client, "tocsin_http_requests_total", **labels) == before + 1


def test_ingested_findings_are_counted_by_outcome(client: Any) -> None:
    created_before = metric(client, "tocsin_findings_ingested_total", outcome="created")
    unchanged_before = metric(client, "tocsin_findings_ingested_total", outcome="unchanged")
    batch = [finding(type=f"CVE-{uuid.uuid4().hex}"), finding(type=f"CVE-{uuid.uuid4().hex}")]
    assert post(client, *batch).status_code == 200
    assert post(client, batch[0]).status_code == 200
    assert metric(client, "tocsin_findings_ingested_total", outcome="created") == created_before + 2
    assert metric(client, "tocsin_findings_ingested_total", outcome="unchanged") == unchanged_before + 1


# Request ids


def test_every_response_carries_a_generated_request_id(anon: Any, client: Any) -> None:
    responses = [
        anon.get("/healthz"),
        anon.get("/v1/findings"),  # 401
        client.get("/v1/findings/nope"),  # 404
        client.get("/v1/findings", params={"limit": 0}),  # 422
        anon.get("/no/such/path"),  # 404 from routing
    ]
    ids = [resp.headers.get("X-Request-ID", "") for resp in responses]
    assert all(GENERATED_ID.match(rid) for rid in ids), ids
    assert len(set(ids)) == len(ids)


def test_a_well_formed_request_id_is_echoed(bare: TestClient) -> None:
    rid = "edge-7f3a.retry_2"
    assert bare.get("/healthz", headers={"X-Request-ID": rid}).headers["X-Request-ID"] == rid


@pytest.mark.parametrize("offered", [b"has spaces", b"x" * 65, b"semi;colon", b"", "é".encode()])
def test_a_malformed_request_id_is_replaced(bare: TestClient, offered: bytes) -> None:
    resp = bare.get("/healthz", headers={"X-Request-ID": offered})
    assert GENERATED_ID.match(resp.headers["X-Request-ID"])


def test_refused_oversized_body_carries_a_request_id(bare: TestClient) -> None:
    resp = bare.post("/v1/findings", content=b"x" * 2048, headers={"X-Request-ID": "big-1"})
    assert resp.status_code == 413
    assert resp.json()["code"] == "too_large"
    assert resp.headers["X-Request-ID"] == "big-1"


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 512):
        yield b"x" * 512


def test_streamed_body_over_the_limit_is_413(bare: TestClient) -> None:
    # No Content-Length: the limit is enforced while the body streams in, whoever reads it.
    resp = bare.patch("/v1/findings/x", content=_chunks(4096), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["code"] == "too_large"
    assert "TOCSIN_MAX_BODY_BYTES" in resp.json()["detail"]


def test_streamed_ingest_body_over_the_limit_is_413(settings: Settings, engine: Engine) -> None:
    # Ingest endpoints authenticate (and check the token's limits) before they read the body, so this
    # one needs the database and a token.
    app = create_app(settings.model_copy(update={"max_body_bytes": 1024}), engine)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        resp = client.post(
            "/v1/findings", content=_chunks(4096), headers={"Content-Type": "application/json"}
        )
    assert resp.status_code == 413
    assert "TOCSIN_MAX_BODY_BYTES" in resp.json()["detail"]


def test_unexpected_error_is_500_with_the_request_id_to_quote(
    tmp_path: Path, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    app = app_without_database(tmp_path)

    def broken() -> None:
        raise RuntimeError("internal detail the caller must not see")

    app.add_api_route("/broken", broken)
    resp = TestClient(app).get("/broken", headers={"X-Request-ID": "oops-1"})
    assert resp.status_code == 500
    assert resp.headers["X-Request-ID"] == "oops-1"
    assert resp.json() == {
        "detail": "internal error; quote request id oops-1 when reporting it",
        "code": "internal",
    }
    errors = [line for line in json_log() if line["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "oops-1"
    assert "RuntimeError: internal detail" in errors[0]["exc"]
    access = [line for line in json_log() if line["logger"] == "tocsin.http"]
    assert [(a["status"], a["request_id"]) for a in access] == [(500, "oops-1")]


# Logs


def test_each_request_is_logged_once_as_json_with_its_request_id(
    anon: Any, json_log: Callable[[], list[dict[str, Any]]]
) -> None:
    anon.get("/v1/findings/abc", headers={"X-Request-ID": "trace-42"})
    access = [line for line in json_log() if line["logger"] == "tocsin.http"]
    assert len(access) == 1
    assert access[0]["request_id"] == "trace-42"
    assert access[0]["msg"] == "GET /v1/findings/abc 401"
    assert (access[0]["status"], access[0]["route"], access[0]["level"]) == (
        401,
        "/v1/findings/{finding_id}",
        "info",
    )


def test_json_formatter_writes_one_object_per_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError as exc:
        record = logging.LogRecord("tocsin.test", logging.WARNING, __file__, 1, "a %s", ("b",), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.__dict__["batch"] = 7
    record.__dict__["color_message"] = "\x1b[36ma b\x1b[0m"
    token = request_id_var.set("rid-9")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["msg"] == "a b"
    assert (entry["level"], entry["logger"], entry["request_id"], entry["batch"]) == (
        "warning",
        "tocsin.test",
        "rid-9",
        7,
    )
    assert entry["ts"].endswith("+00:00")
    assert "ValueError: bad" in entry["exc"]
    assert "color_message" not in entry


def test_json_formatter_outside_a_request_has_no_request_id() -> None:
    record = logging.LogRecord("tocsin.test", logging.INFO, __file__, 1, "idle", None, None)
    assert "request_id" not in orjson.loads(JsonFormatter().format(record))


# Secrets


def test_token_values_never_reach_logs_or_error_responses(
    client: Any, anon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    revoked = client.post("/v1/tokens", json={"name": "gone", "scopes": ["read"]}).json()["token"]
    client.delete("/v1/tokens/gone")
    narrow = client.post("/v1/tokens", json={"name": "narrow", "scopes": ["ingest"]}).json()["token"]
    unknown = f"tcn_never-issued-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    responses = [
        anon.get("/v1/findings", headers={"Authorization": f"Bearer {unknown}"}),
        anon.post("/v1/findings", content=b"{", headers={"Authorization": f"Bearer {unknown}"}),
        anon.get("/v1/findings", headers={"Authorization": f"Bearer {revoked}"}),
        anon.get("/v1/findings", headers={"Authorization": f"Bearer {narrow}"}),
        anon.get("/v1/findings", headers={"Authorization": unknown}),
        client.patch("/v1/findings/x", json={"status": "gone", "note": unknown}),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401, 403, 401, 422]
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert "tocsin.http" in logged  # the requests were logged
    for secret in (unknown, revoked, narrow):
        assert secret not in logged
        for resp in responses:
            assert secret not in resp.text
            assert all(secret not in value for value in resp.headers.values())


# Error responses


def test_invalid_query_parameter_is_422_naming_it(client: Any) -> None:
    resp = client.get("/v1/findings", params={"limit": 0})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "invalid"
    assert "limit" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["limit"]
    assert "greater than or equal to 1" in body["errors"][0]["message"]


def test_several_invalid_parameters_are_all_named(client: Any) -> None:
    resp = client.get("/v1/findings", params={"limit": "many", "since": "yesterday"})
    assert resp.status_code == 422
    assert sorted(e["field"] for e in resp.json()["errors"]) == ["limit", "since"]


def test_unknown_field_in_a_body_is_422_naming_it(client: Any) -> None:
    resp = client.patch("/v1/findings/any", json={"status": "acknowledged", "colour": "red"})
    assert resp.status_code == 422
    assert resp.json()["code"] == "invalid"
    assert resp.json()["errors"] == [{"field": "colour", "message": "unknown field"}]


def test_invalid_body_value_is_422_naming_the_field(client: Any) -> None:
    resp = client.patch("/v1/findings/any", json={"status": "closed"})
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["status"]


@pytest.mark.parametrize("content", [b"{not json", b""])
def test_unreadable_body_is_422_on_the_body(client: Any, content: bytes) -> None:
    resp = client.patch("/v1/findings/any", content=content, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["code"] == "invalid"
    assert [e["field"] for e in resp.json()["errors"]] == ["body"]


def test_invalid_path_parameter_is_422_naming_it(client: Any) -> None:
    resp = client.delete("/v1/tokens/" + "n" * 129)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["name"]


def test_unknown_path_and_wrong_method_answer_the_error_shape(bare: TestClient) -> None:
    missing = bare.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert "/v1/nothing-here" in missing.json()["detail"]
    wrong = bare.put("/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]
