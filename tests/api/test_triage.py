"""PATCH /v1/findings/{id}: allowed transitions, 409 with a reason, audit with the token's name."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.helpers import finding, post


@pytest.fixture
def fid(client: Any) -> str:
    return str(post(client, finding()).json()["results"][0]["id"])


def test_acknowledge_then_resolve_then_reopen(client: Any, fid: str) -> None:
    for status in ("acknowledged", "resolved", "open"):
        resp = client.patch(f"/v1/findings/{fid}", json={"status": status, "note": f"to {status}"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == status
    kinds = [(e["kind"], e["to_status"]) for e in client.get(f"/v1/findings/{fid}").json()["events"]]
    assert kinds[:3] == [("triage", "open"), ("triage", "resolved"), ("triage", "acknowledged")]


def test_invalid_transition_is_409_saying_why(client: Any, fid: str) -> None:
    client.patch(f"/v1/findings/{fid}", json={"status": "false_positive", "note": "scanner bug"})
    resp = client.patch(f"/v1/findings/{fid}", json={"status": "acknowledged"})
    assert resp.status_code == 409
    assert "false_positive" in resp.json()["detail"] and "open" in resp.json()["detail"]
    same = client.patch(f"/v1/findings/{fid}", json={"status": "false_positive"})
    assert same.status_code == 409 and "already" in same.json()["detail"]


def test_suppress_needs_a_future_time(client: Any, fid: str) -> None:
    missing = client.patch(f"/v1/findings/{fid}", json={"status": "suppressed"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "suppressed_until"
    past = client.patch(
        f"/v1/findings/{fid}", json={"status": "suppressed", "suppressed_until": "2000-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    ok = client.patch(
        f"/v1/findings/{fid}",
        json={"status": "suppressed", "suppressed_until": "2999-01-01T00:00:00Z", "note": "accepted risk"},
    )
    assert ok.status_code == 200
    assert ok.json()["suppressed_until"].startswith("2999-01-01")
    # Still suppressed after the source reports it again.
    post(client, finding())
    assert client.get(f"/v1/findings/{fid}").json()["status"] == "suppressed"


def test_unknown_status_or_field_is_422(client: Any, fid: str) -> None:
    assert client.patch(f"/v1/findings/{fid}", json={"status": "closed"}).status_code == 422
    resp = client.patch(f"/v1/findings/{fid}", json={"status": "open", "owner": "me"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "owner"


def test_triage_of_unknown_finding_is_404(client: Any) -> None:
    assert client.patch("/v1/findings/nope", json={"status": "acknowledged"}).status_code == 404


def test_triage_is_audited_with_the_token_name(client: Any, fid: str, token_for: Any, engine: Engine) -> None:
    headers = token_for("triage", "read", name="alice-laptop")
    resp = client.patch(
        f"/v1/findings/{fid}", json={"status": "acknowledged", "note": "looking"}, headers=headers
    )
    assert resp.status_code == 200
    event = client.get(f"/v1/findings/{fid}").json()["events"][0]
    assert event["actor"] == "alice-laptop"
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT actor, action, target_id, request_id FROM audit_log WHERE target_id = :id"),
            {"id": fid},
        ).one()
    assert row.actor == "alice-laptop" and row.action == "finding.triage"
    assert row.request_id == resp.headers["x-request-id"]


def test_read_token_cannot_triage(client: Any, fid: str, token_for: Any) -> None:
    resp = client.patch(f"/v1/findings/{fid}", json={"status": "acknowledged"}, headers=token_for("read"))
    assert resp.status_code == 403
    assert client.get(f"/v1/findings/{fid}").json()["status"] == "open"


def test_audit_endpoint_lists_triage_for_admins_only(client: Any, fid: str, token_for: Any) -> None:
    client.patch(f"/v1/findings/{fid}", json={"status": "acknowledged", "note": "n"})
    client.patch(f"/v1/findings/{fid}", json={"status": "resolved"})
    page = client.get("/v1/audit", params={"target_id": fid}).json()
    assert [item["after"]["status"] for item in page["items"]] == ["resolved", "acknowledged"]
    assert page["items"][0]["before"]["status"] == "acknowledged"
    assert page["items"][0]["actor"] == "test-admin"
    one = client.get("/v1/audit", params={"target_id": fid, "limit": 1}).json()
    older = client.get("/v1/audit", params={"target_id": fid, "before_id": one["next_before_id"]}).json()
    assert [i["after"]["status"] for i in older["items"]] == ["acknowledged"]
    assert client.get("/v1/audit", headers=token_for("read", "triage")).status_code == 403


def test_suppression_ends_by_itself(settings: Any, engine: Engine) -> None:
    """A suppression lapses at its time: the maintenance loop reopens the finding with an event."""
    import time
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import ADMIN_TOKEN

    fast = settings.model_copy(update={"maintenance_interval_seconds": 0.1})
    with TestClient(create_app(fast, engine), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        fid = post(client, finding()).json()["results"][0]["id"]
        until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        assert (
            client.patch(
                f"/v1/findings/{fid}", json={"status": "suppressed", "suppressed_until": until}
            ).status_code
            == 200
        )
        deadline = time.monotonic() + 10
        while client.get(f"/v1/findings/{fid}").json()["status"] != "open":
            assert time.monotonic() < deadline, "suppression did not lapse"
            time.sleep(0.1)
        detail = client.get(f"/v1/findings/{fid}").json()
    assert detail["events"][0]["kind"] == "suppression_expired"
    assert detail["suppressed_until"] is None
