"""Tokens: source binding on every ingest path; revocation, expiry and last use as every replica sees them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.api.aws import EXAMPLE_EVENT
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import finding, post
from tests.samples import AWS, SCANNERS

ASFF = SCANNERS / "asff"
GUARDDUTY_ASFF = ASFF / "guardduty" / "Unusual Behaviors-User-Persistence IAMUser-NetworkPermissions.json"
TRIVY_REPORT = SCANNERS / "trivy" / "legacy_many_vulns.json"


def bound(client: Any, name: str, *sources: str, scopes: tuple[str, ...] = ("ingest",)) -> dict[str, str]:
    resp = client.post("/v1/tokens", json={"name": name, "scopes": list(scopes), "sources": list(sources)})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def total(engine: Engine) -> int:
    with engine.connect() as conn:
        count: int = conn.execute(text("SELECT count(*) FROM findings")).scalar_one()
        return count


def assert_refused(resp: Any, source: str, allowed: str) -> None:
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["code"] == "forbidden"
    assert repr(source) in body["detail"] and allowed in body["detail"]


def post_json(client: Any, path: str, document: Any, headers: dict[str, str]) -> Any:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(path, content=body, headers={**headers, "content-type": "application/json"})


# creation


def test_binding_is_shown_listed_and_audited(client: Any, engine: Engine) -> None:
    created = client.post(
        "/v1/tokens", json={"name": "ci", "scopes": ["ingest"], "sources": ["Trivy", "grype"]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["sources"] == ["grype", "trivy"]  # kept in lower case
    listed = {item["name"]: item for item in client.get("/v1/tokens").json()}
    assert listed["ci"]["sources"] == ["grype", "trivy"]
    assert listed["test-admin"]["sources"] is None
    with engine.connect() as conn:
        after = conn.execute(text("SELECT after FROM audit_log WHERE action = 'token.create'")).scalar_one()
    after = json.loads(after) if isinstance(after, str) else after
    assert after["sources"] == ["grype", "trivy"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"scopes": ["read"], "sources": ["trivy"]}, "ingest scope"),
        ({"scopes": ["ingest"], "sources": []}, ""),
        ({"scopes": ["ingest"], "sources": ["trivy scanner"]}, ""),
        ({"scopes": ["ingest"], "sources": ["x" * 65]}, ""),
    ],
)
def test_invalid_bindings_are_422_naming_sources(client: Any, body: dict[str, Any], message: str) -> None:
    resp = client.post("/v1/tokens", json={"name": "bad", **body})
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"].startswith("sources")
    assert message in resp.json()["detail"]
    assert "bad" not in {item["name"] for item in client.get("/v1/tokens").json()}


# POST /v1/findings and /v1/ingest/native


def test_a_bound_token_posts_its_own_source(client: Any, anon: Any) -> None:
    headers = bound(client, "trivy-ci", "trivy")
    resp = post(anon, finding(source="trivy"), headers=headers)
    assert resp.status_code == 200 and resp.json()["created"] == 1
    resp = anon.post("/v1/ingest/native", json={"findings": [finding(source="TRIVY")]}, headers=headers)
    assert resp.status_code == 200, resp.text  # source names compare without case


def test_another_source_is_403_and_nothing_of_the_batch_is_stored(
    client: Any, anon: Any, engine: Engine
) -> None:
    headers = bound(client, "trivy-ci", "trivy")
    batch = [finding(source="trivy"), finding(source="guardduty", type="Recon:EC2/PortProbe")]
    assert_refused(post(anon, *batch, headers=headers), "guardduty", "trivy")
    native = anon.post("/v1/ingest/native", json={"findings": batch}, headers=headers)
    assert_refused(native, "guardduty", "trivy")
    auto = anon.post("/v1/ingest/auto", json={"findings": batch}, headers=headers)
    assert_refused(auto, "guardduty", "trivy")
    assert total(engine) == 0


def test_invalid_items_do_not_count_against_the_binding(client: Any, anon: Any) -> None:
    headers = bound(client, "trivy-ci", "trivy")
    resp = post(anon, finding(), {"source": "guardduty"}, headers=headers)  # the second one is invalid
    assert resp.status_code == 200 and resp.json()["created"] == 1 and len(resp.json()["failed"]) == 1


def test_an_unbound_ingest_token_posts_any_source(anon: Any, token_for: Any) -> None:
    resp = post(
        anon, finding(source="trivy"), finding(source="guardduty", type="x"), headers=token_for("ingest")
    )
    assert resp.status_code == 200 and resp.json()["created"] == 2


# reports: /v1/ingest/{format}, /auto, /securityhub


def test_a_report_in_a_bound_format_is_stored(client: Any, anon: Any) -> None:
    headers = bound(client, "trivy-ci", "trivy")
    resp = post_json(anon, "/v1/ingest/trivy", TRIVY_REPORT.read_bytes(), headers)
    assert resp.status_code == 200 and resp.json()["created"] == 93
    assert post_json(anon, "/v1/ingest/auto", TRIVY_REPORT.read_bytes(), headers).json()["unchanged"] == 93


@pytest.mark.parametrize("path", ["/v1/ingest/asff", "/v1/ingest/securityhub", "/v1/ingest/auto"])
def test_a_trivy_token_cannot_post_guardduty_findings(
    client: Any, anon: Any, engine: Engine, path: str
) -> None:
    headers = bound(client, "trivy-ci", "trivy")
    assert_refused(post_json(anon, path, GUARDDUTY_ASFF.read_bytes(), headers), "guardduty", "trivy")
    assert total(engine) == 0
    allowed = bound(client, "gd", "guardduty")
    assert post_json(anon, path, GUARDDUTY_ASFF.read_bytes(), allowed).status_code == 200


def test_a_report_refused_late_stores_none_of_its_earlier_findings(
    settings: Settings, engine: Engine, client: Any
) -> None:
    # Five Inspector findings, then a GuardDuty one; stored two at a time, so chunks were written.
    report = json.loads((ASFF / "many_vulns.json").read_text()) + json.loads(GUARDDUTY_ASFF.read_text())
    headers = bound(client, "inspector-ci", "inspector")
    with TestClient(create_app(settings.model_copy(update={"max_batch_findings": 2}), engine)) as chunked:
        assert_refused(post_json(chunked, "/v1/ingest/asff", report, headers), "guardduty", "inspector")
        assert total(engine) == 0
        assert post_json(chunked, "/v1/ingest/asff", report[:5], headers).json()["created"] == 5


# AWS push: EventBridge (bearer or API-key header)


@pytest.mark.parametrize("header", ["Authorization", "X-Tocsin-Key"])
def test_eventbridge_events_obey_the_binding(client: Any, anon: Any, engine: Engine, header: str) -> None:
    def as_header(auth: dict[str, str]) -> dict[str, str]:
        secret = auth["Authorization"].removeprefix("Bearer ")
        return auth if header == "Authorization" else {header: secret}

    event = json.loads(
        (AWS / "eventbridge" / "guardduty-finding-event_Backdoor-EC2-Spambot_via-sns.json").read_text()
    )
    trivy = as_header(bound(client, "trivy-ci", "trivy"))
    assert_refused(post_json(anon, "/v1/ingest/eventbridge", event, trivy), "guardduty", "trivy")
    assert_refused(
        post_json(anon, "/v1/ingest/eventbridge", [EXAMPLE_EVENT, event], trivy), "guardduty", "trivy"
    )
    assert total(engine) == 0
    guardduty = as_header(bound(client, "gd-events", "guardduty", "macie"))
    assert post_json(anon, "/v1/ingest/eventbridge", event, guardduty).status_code == 200


# CLI


def test_tokens_create_binds_sources(database_url: str, anon: Any, tmp_path: Any) -> None:
    from tests.test_cli import clean_env, run_tocsin

    env = clean_env(TOCSIN_DATABASE_URL=database_url)
    args = ["tokens", "create", "--name", "trivy-cli", "--scope", "ingest", "--source", "trivy"]
    result = run_tocsin(*args, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headers = {"Authorization": f"Bearer {result.stdout.strip()}"}
    assert post(anon, finding(source="trivy"), headers=headers).status_code == 200
    assert_refused(post(anon, finding(source="gitleaks"), headers=headers), "gitleaks", "trivy")
    refused = run_tocsin(
        "tokens", "create", "--name", "r", "--scope", "read", "--source", "trivy", env=env, cwd=tmp_path
    )
    assert refused.returncode == 1 and "ingest scope" in refused.stderr and refused.stdout == ""


# revocation, expiry, last use


def test_revoked_through_one_replica_is_401_on_the_next_request_to_another(
    settings: Settings, engine: Engine, client: Any
) -> None:
    secret = client.post("/v1/tokens", json={"name": "leaked", "scopes": ["read", "ingest"]}).json()["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings, engine)) as other_replica:
        assert other_replica.get("/v1/stats", headers=headers).status_code == 200
        assert client.delete("/v1/tokens/leaked").status_code == 200
        for resp in (
            other_replica.get("/v1/stats", headers=headers),
            post(other_replica, finding(), headers=headers),
        ):
            assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_expired_token_is_refused_everywhere(client: Any, anon: Any, engine: Engine) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    body = {"name": "old", "scopes": ["ingest", "read"], "expires_at": past}
    headers = {"Authorization": f"Bearer {client.post('/v1/tokens', json=body).json()['token']}"}
    assert anon.get("/v1/findings", headers=headers).status_code == 401
    resp = post(anon, finding(), headers=headers)
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    assert total(engine) == 0


def last_used(engine: Engine, name: str) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT last_used_at FROM api_tokens WHERE name = :n"), {"n": name}
        ).scalar_one()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value


def test_last_use_is_recorded_at_most_once_a_window(settings: Settings, engine: Engine, client: Any) -> None:
    secret = client.post("/v1/tokens", json={"name": "ci", "scopes": ["read"]}).json()["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert last_used(engine, "ci") is None
    with TestClient(create_app(settings, engine)) as replica:  # default window: 60 s
        before = datetime.now(UTC).replace(tzinfo=None)
        assert replica.get("/v1/stats", headers=headers).status_code == 200
        first = last_used(engine, "ci")
        assert first is not None and first.replace(tzinfo=None) >= before - timedelta(seconds=1)
        assert replica.get("/v1/stats", headers=headers).status_code == 200
        assert last_used(engine, "ci") == first  # no write per request
    eager = settings.model_copy(update={"token_touch_seconds": 0})
    with TestClient(create_app(eager, engine)) as replica:
        assert replica.get("/v1/stats", headers=headers).status_code == 200
        second = last_used(engine, "ci")
        assert second is not None and second > first


def test_the_admin_fixture_token_is_unbound(client: Any) -> None:
    listed = {item["name"]: item for item in client.get("/v1/tokens").json()}
    assert listed["test-admin"]["sources"] is None
    assert ADMIN_TOKEN not in json.dumps(listed)
