"""/v1/tokens: secrets shown once and stored hashed, listing, revocation, conflicts, audit trail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.conftest import ADMIN_TOKEN

TOKEN_FIELDS = {"id", "name", "scopes", "sources", "created_at", "expires_at", "last_used_at", "revoked_at"}


def create(client: Any, name: str, *scopes: str, **extra: Any) -> Any:
    return client.post("/v1/tokens", json={"name": name, "scopes": list(scopes), **extra})


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def audit_rows(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT actor, target_id, request_id FROM audit_log WHERE action = :a ORDER BY id"),
                {"a": action},
            )
        )


def test_create_returns_the_secret_once_with_name_and_scopes(client: Any, anon: Any) -> None:
    resp = create(client, "trivy-ci", "ingest", "read")
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    assert (body["name"], body["scopes"]) == ("trivy-ci", ["ingest", "read"])
    assert body["token"].startswith("tcn_") and len(body["token"]) >= 40
    assert anon.get("/v1/stats", headers=bearer(body["token"])).status_code == 200


def test_each_token_is_a_fresh_random_secret(client: Any) -> None:
    secrets = {create(client, f"ci-{i}", "read").json()["token"] for i in range(3)}
    assert len(secrets) == 3


def test_database_never_holds_the_secret(client: Any, engine: Engine) -> None:
    secret = create(client, "stored", "read").json()["token"]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).all()
    assert len(rows) == 2  # the test admin and the new token
    for row in rows:
        assert all(secret not in str(value) for value in row), row
        assert all(secret[4:] not in str(value) for value in row), row


def test_listing_never_shows_secrets_or_hashes(client: Any, engine: Engine) -> None:
    secret = create(client, "listed", "ingest").json()["token"]
    resp = client.get("/v1/tokens")
    assert resp.status_code == 200
    with engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert secret not in resp.text
    assert all(h not in resp.text for h in hashes)
    listed = {item["name"]: item for item in resp.json()}
    assert set(listed) == {"test-admin", "listed"}
    assert all(set(item) == TOKEN_FIELDS for item in listed.values())
    assert listed["listed"]["scopes"] == ["ingest"]


def test_listing_shows_when_a_token_was_last_used(client: Any, anon: Any) -> None:
    secret = create(client, "used", "read").json()["token"]
    create(client, "unused", "read")
    anon.get("/v1/stats", headers=bearer(secret))
    listed = {item["name"]: item for item in client.get("/v1/tokens").json()}
    assert listed["used"]["last_used_at"] is not None
    assert listed["unused"]["last_used_at"] is None


def test_naive_expiry_is_taken_as_utc_and_shown_with_its_zone(client: Any) -> None:
    created = create(client, "expiring", "read", expires_at="2099-01-02T03:04:05").json()
    listed = {item["name"]: item for item in client.get("/v1/tokens").json()}
    assert datetime.fromisoformat(created["expires_at"]).utcoffset() is not None
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(
        listed["expiring"]["expires_at"]
    )
    assert datetime.fromisoformat(created["expires_at"]).isoformat() == "2099-01-02T03:04:05+00:00"


def test_duplicate_name_is_409_and_keeps_the_first_token(client: Any, anon: Any) -> None:
    first = create(client, "trivy-ci", "read").json()["token"]
    resp = create(client, "trivy-ci", "admin")
    assert resp.status_code == 409
    assert resp.json()["code"] == "conflict"
    assert "trivy-ci" in resp.json()["detail"]
    assert "token" not in resp.json()
    assert anon.get("/v1/stats", headers=bearer(first)).status_code == 200
    assert anon.get("/v1/tokens", headers=bearer(first)).status_code == 403


def test_concurrent_creations_under_one_name_make_one_token(live_server: str) -> None:
    def attempt(_: int) -> int:
        resp = httpx.post(
            f"{live_server}/v1/tokens",
            json={"name": "raced", "scopes": ["read"]},
            headers=bearer(ADMIN_TOKEN),
            timeout=30,
        )
        return resp.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(attempt, range(8)))
    assert codes == [201] + [409] * 7


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["superuser"]}, "scopes.0"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "has space", "scopes": ["read"]}, "name"),
        ({"name": "a/b", "scopes": ["read"]}, "name"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x" * 129, "scopes": ["read"]}, "name"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "token": "tcn_chosen-by-caller"}, "token"),
        ({"name": "x", "scopes": ["read"], "expires_at": "next tuesday"}, "expires_at"),
    ],
)
def test_invalid_creation_is_422_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    resp = client.post("/v1/tokens", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid"
    assert field in [e["field"] for e in resp.json()["errors"]]
    assert [t["name"] for t in client.get("/v1/tokens").json()] == ["test-admin"]


def test_revoke_takes_effect_on_the_next_request(client: Any, anon: Any) -> None:
    secret = create(client, "revoke-me", "read").json()["token"]
    assert anon.get("/v1/stats", headers=bearer(secret)).status_code == 200
    resp = client.delete("/v1/tokens/revoke-me")
    assert resp.status_code == 200
    assert resp.json()["revoked_at"] is not None
    assert "token" not in resp.json()
    assert anon.get("/v1/stats", headers=bearer(secret)).status_code == 401
    listed = {item["name"]: item for item in client.get("/v1/tokens").json()}
    assert listed["revoke-me"]["revoked_at"] == resp.json()["revoked_at"]


def test_revoking_an_unknown_token_is_404(client: Any) -> None:
    resp = client.delete("/v1/tokens/ghost")
    assert resp.status_code == 404
    assert resp.json()["code"] == "not_found"
    assert "ghost" in resp.json()["detail"]


def test_revoking_twice_is_harmless_and_audited_once(client: Any, engine: Engine) -> None:
    create(client, "twice", "read")
    first = client.delete("/v1/tokens/twice").json()
    second = client.delete("/v1/tokens/twice")
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first["revoked_at"]
    assert len(audit_rows(engine, "token.revoke")) == 1


def test_a_revoked_name_stays_taken(client: Any) -> None:
    create(client, "retired", "read")
    client.delete("/v1/tokens/retired")
    assert create(client, "retired", "read").status_code == 409


def test_create_and_revoke_are_audited_with_the_caller_as_actor(
    anon: Any, token_for: Any, engine: Engine
) -> None:
    alice = token_for("admin", name="ops-alice")
    resp = anon.post("/v1/tokens", json={"name": "audited", "scopes": ["ingest"]}, headers=alice)
    assert resp.status_code == 201
    revoked = anon.delete("/v1/tokens/audited", headers=alice)
    assert revoked.status_code == 200
    assert audit_rows(engine, "token.create") == [("ops-alice", "audited", resp.headers["X-Request-ID"])]
    assert audit_rows(engine, "token.revoke") == [("ops-alice", "audited", revoked.headers["X-Request-ID"])]


def test_audit_record_of_creation_holds_no_secret(client: Any, engine: Engine) -> None:
    secret = create(client, "quiet", "read").json()["token"]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log")).all()
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0])


def test_refused_creation_writes_no_audit_record(client: Any, engine: Engine) -> None:
    create(client, "dup", "read")
    assert create(client, "dup", "read").status_code == 409
    assert create(client, "bad name", "read").status_code == 422
    assert [row.target_id for row in audit_rows(engine, "token.create")] == ["dup"]
