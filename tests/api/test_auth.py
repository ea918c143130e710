"""Bearer tokens and scopes on every /v1 endpoint; open operational endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.auth import SCOPES
from tests.helpers import finding

# The scope each endpoint needs. A new /v1 endpoint must be added here (see the first test).
ENDPOINTS: list[tuple[str, str, str]] = [
    ("POST", "/v1/findings", "ingest"),
    ("POST", "/v1/ingest/auto", "ingest"),
    ("POST", "/v1/ingest/{format_name}", "ingest"),
    ("POST", "/v1/ingest/eventbridge", "ingest"),
    ("POST", "/v1/ingest/securityhub", "ingest"),
    ("GET", "/v1/findings", "read"),
    ("GET", "/v1/findings/{finding_id}", "read"),
    ("GET", "/v1/stats", "read"),
    ("PATCH", "/v1/findings/{finding_id}", "triage"),
    ("GET", "/v1/tokens", "admin"),
    ("POST", "/v1/tokens", "admin"),
    ("DELETE", "/v1/tokens/{name}", "admin"),
    ("GET", "/v1/audit", "admin"),
    ("GET", "/v1/teams", "read"),
    ("GET", "/v1/teams/{name}", "read"),
    ("POST", "/v1/teams", "admin"),
    ("PUT", "/v1/teams/{name}", "admin"),
    ("PATCH", "/v1/teams/{name}", "admin"),
    ("DELETE", "/v1/teams/{name}", "admin"),
    ("GET", "/v1/channels", "read"),
    ("GET", "/v1/channels/{name}", "read"),
    ("POST", "/v1/channels", "admin"),
    ("PUT", "/v1/channels/{name}", "admin"),
    ("PATCH", "/v1/channels/{name}", "admin"),
    ("DELETE", "/v1/channels/{name}", "admin"),
    ("POST", "/v1/channels/{name}/test", "admin"),
    ("GET", "/v1/findings/{finding_id}/preview", "read"),
    ("GET", "/v1/rules", "read"),
    ("GET", "/v1/rules/{name}", "read"),
    ("POST", "/v1/rules", "admin"),
    ("PUT", "/v1/rules/order", "admin"),
    ("PUT", "/v1/rules/{name}", "admin"),
    ("PATCH", "/v1/rules/{name}", "admin"),
    ("DELETE", "/v1/rules/{name}", "admin"),
    ("GET", "/v1/silences", "read"),
    ("GET", "/v1/silences/{silence_id}", "read"),
    ("POST", "/v1/silences", "admin"),
    ("PUT", "/v1/silences/{silence_id}", "admin"),
    ("DELETE", "/v1/silences/{silence_id}", "admin"),
    ("GET", "/v1/notifications", "read"),
    ("GET", "/v1/notifications/{notification_id}", "read"),
    ("POST", "/v1/notifications/{notification_id}/retry", "admin"),
    ("POST", "/v1/routing/explain", "read"),
    ("GET", "/v1/findings/{finding_id}/routing", "read"),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]
# Authenticated by a signature in the message or a shared secret, not a token (tests/api/test_sns.py,
# tests/api/test_jira_webhook.py).
SIGNED_ENDPOINTS = {
    ("POST", "/v1/ingest/sns"),
    ("POST", "/v1/jira/webhook"),
    ("POST", "/v1/slack/interactions"),
}

_PATH_VALUES = {
    "{finding_id}": "0123456789abcdef",
    "{name}": "no-such-token",
    "{format_name}": "native",
    "{silence_id}": "no-such-silence",
    "{notification_id}": "0123456789abcdef",
}
_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/findings"): {"findings": [finding()]},
    ("POST", "/v1/ingest/auto"): {"findings": [finding()]},
    ("POST", "/v1/ingest/{format_name}"): {"findings": [finding()]},
    ("POST", "/v1/ingest/eventbridge"): {"source": "aws.guardduty", "detail-type": "GuardDuty Finding"},
    ("POST", "/v1/ingest/securityhub"): {"Findings": []},
    ("PATCH", "/v1/findings/{finding_id}"): {"status": "acknowledged"},
    ("POST", "/v1/tokens"): {"name": "made-in-test", "scopes": ["read"]},
    # Routing bodies that are refused (404/422/409) once authorized: no team or rule outlives the test.
    ("POST", "/v1/teams"): {"name": "made-in-test", "timezone": "Nowhere/Land"},
    ("PUT", "/v1/teams/{name}"): {"name": "no-such-token"},
    ("PATCH", "/v1/teams/{name}"): {"description": "x"},
    ("POST", "/v1/channels"): {"name": "c", "team": "no-such-team", "kind": "slack", "target": "C0123ABCD"},
    ("PUT", "/v1/channels/{name}"): {
        "name": "no-such-token",
        "team": "t",
        "kind": "slack",
        "target": "C0123ABCD",
    },
    ("PATCH", "/v1/channels/{name}"): {"enabled": False},
    ("POST", "/v1/rules"): {"name": "made-in-test", "team": "no-such-team"},
    ("PUT", "/v1/rules/order"): {"names": ["no-such-rule"]},
    ("PUT", "/v1/rules/{name}"): {"name": "no-such-token", "team": "t"},
    ("PATCH", "/v1/rules/{name}"): {"enabled": False},
    ("POST", "/v1/silences"): {"match": {"type": "x"}, "ends_at": "2000-01-01T00:00:00Z", "reason": "r"},
    ("PUT", "/v1/silences/{silence_id}"): {
        "match": {"type": "x"},
        "ends_at": "2099-01-01T00:00:00Z",
        "reason": "r",
    },
    ("POST", "/v1/routing/explain"): {"finding": finding()},
}


def call(client: Any, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    url = path
    for placeholder, value in _PATH_VALUES.items():
        url = url.replace(placeholder, value)
    return client.request(method, url, json=_BODIES.get((method, path)), headers=headers)


def assert_unauthorized(resp: Any, *words: str) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert body["code"] == "unauthorized"
    assert all(word in body["detail"] for word in words), body["detail"]
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_every_v1_endpoint_has_a_declared_scope(anon: Any) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    documented = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/v1")
        for method in operations
    }
    assert documented == {(method, path) for method, path, _ in ENDPOINTS} | SIGNED_ENDPOINTS


def test_every_v1_endpoint_without_a_token_is_401(anon: Any) -> None:
    for method, path, _ in ENDPOINTS:
        resp = call(anon, method, path)
        assert resp.status_code == 401, f"{method} {path}: {resp.status_code}"
        assert_unauthorized(resp, "Authorization: Bearer")


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_endpoint_opens_to_its_scope_only(
    anon: Any, token_for: Any, method: str, path: str, scope: str
) -> None:
    others = [s for s in SCOPES if s not in (scope, "admin")]
    refused = call(anon, method, path, headers=token_for(*others))
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden"
    assert f"lacks the '{scope}' scope" in refused.json()["detail"]
    allowed = call(anon, method, path, headers=token_for(scope))
    assert allowed.status_code not in (401, 403), allowed.text


def test_admin_opens_every_endpoint(anon: Any, token_for: Any) -> None:
    admin = token_for("admin")
    for method, path, _ in ENDPOINTS:
        resp = call(anon, method, path, headers=admin)
        assert resp.status_code not in (401, 403), f"{method} {path}: {resp.text}"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer tcn_not-a-token-we-ever-issued",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "tcn_a-token-without-the-scheme",
    ],
)
def test_unknown_or_malformed_credentials_are_401(anon: Any, authorization: str) -> None:
    resp = anon.get("/v1/findings", headers={"Authorization": authorization})
    assert_unauthorized(resp)


def test_scheme_is_case_insensitive(anon: Any, token_for: Any) -> None:
    secret = token_for("read")["Authorization"].removeprefix("Bearer ")
    assert anon.get("/v1/stats", headers={"Authorization": f"bearer {secret}"}).status_code == 200


def test_revoked_token_is_401_on_its_next_request(client: Any, anon: Any) -> None:
    secret = client.post("/v1/tokens", json={"name": "soon-gone", "scopes": ["read"]}).json()["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert anon.get("/v1/stats", headers=headers).status_code == 200
    assert client.delete("/v1/tokens/soon-gone").status_code == 200
    assert_unauthorized(anon.get("/v1/stats", headers=headers), "revoked")


def test_expired_token_is_401(client: Any, anon: Any) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    created = client.post("/v1/tokens", json={"name": "old", "scopes": ["read"], "expires_at": past})
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    assert_unauthorized(anon.get("/v1/stats", headers=headers), "expired")


def test_token_before_its_expiry_works(client: Any, anon: Any) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = client.post("/v1/tokens", json={"name": "fresh", "scopes": ["read"], "expires_at": future})
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    assert anon.get("/v1/stats", headers=headers).status_code == 200


def test_authentication_comes_before_input_validation(anon: Any, token_for: Any) -> None:
    assert anon.get("/v1/findings", params={"limit": 0}).status_code == 401
    resp = anon.patch("/v1/findings/x", json={"colour": "red"}, headers=token_for("read"))
    assert resp.status_code == 403


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operational_endpoints_need_no_token(anon: Any, path: str) -> None:
    assert anon.get(path).status_code == 200
