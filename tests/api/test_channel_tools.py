"""Preview a finding's message for a channel, and send a test message through a channel now."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.clock import new_id, utcnow
from app.db import unit_of_work
from app.main import create_app
from app.models import NotificationChannel
from app.settings import load_settings
from tests.conftest import ADMIN_TOKEN
from tests.fakes.slack import FakeSlack
from tests.helpers import finding, post

TOKEN = "xoxb-channel-tools-token-77aa01"
CHANNEL = "C0SECALERT"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={CHANNEL: "security"}) as fake:
        yield fake


@pytest.fixture
def tools(
    database_url: str, engine: Engine, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("TOCSIN_SECRET_TOOLS_BOT", TOKEN)
    settings = load_settings(
        database_url=database_url,
        bootstrap_token=ADMIN_TOKEN,
        log_json=False,
        outbound_allow_hosts=["127.0.0.1"],
        dispatcher_embedded=False,
        public_url="https://tocsin.example.com",
    )
    with engine.begin() as conn:
        for table in ("deliveries", "notifications", "notification_groups", "silences", "channels", "teams"):
            conn.execute(text(f"DELETE FROM {table}"))
    with TestClient(
        create_app(settings, engine), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as client:
        assert client.post("/v1/teams", json={"name": "payments", "default": True}).status_code == 201
        channel = {
            "name": "payments-slack",
            "team": "payments",
            "kind": "slack",
            "target": CHANNEL,
            "secret_ref": "TOOLS_BOT",
            "options": {"base_url": slack.url},
        }
        assert client.post("/v1/channels", json=channel).status_code == 201
        yield client


def test_preview_renders_the_slack_message_without_sending(tools: TestClient, slack: FakeSlack) -> None:
    post(tools, finding(title="xz-utils backdoor"))
    [item] = tools.get("/v1/findings").json()["items"]

    resp = tools.get(f"/v1/findings/{item['id']}/preview", params={"channel": "payments-slack"})

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["finding_id"], body["channel"], body["kind"]) == (item["id"], "payments-slack", "slack")
    message = body["message"]
    assert "xz-utils backdoor" in message["text"]
    assert message["blocks"][0]["type"] == "header"
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert {e["value"] for e in actions["elements"]} == {item["id"]}
    assert f"https://tocsin.example.com/v1/findings/{item['id']}" in str(message["blocks"])
    assert slack.calls == []  # nothing was sent


def test_preview_refuses_unknown_findings_channels_and_kinds_without_render(
    tools: TestClient, engine: Engine
) -> None:
    post(tools, finding())
    [item] = tools.get("/v1/findings").json()["items"]
    now = utcnow()
    with unit_of_work(engine) as session:
        team_id = session.execute(text("SELECT id FROM teams WHERE name = 'payments'")).scalar_one()
        session.add(
            NotificationChannel(
                id=new_id(),
                name="legacy",
                team_id=team_id,
                kind="carrier-pigeon",
                target="loft",
                options={},
                created_at=now,
                updated_at=now,
            )
        )

    missing = tools.get("/v1/findings/0123456789abcdef/preview", params={"channel": "payments-slack"})
    no_channel = tools.get(f"/v1/findings/{item['id']}/preview", params={"channel": "nope"})
    unsupported = tools.get(f"/v1/findings/{item['id']}/preview", params={"channel": "legacy"})

    assert missing.status_code == 404 and no_channel.status_code == 404
    assert unsupported.status_code == 409
    assert unsupported.json()["detail"] == "preview not supported for carrier-pigeon"


def test_test_send_posts_a_sample_and_reports_ok(tools: TestClient, slack: FakeSlack) -> None:
    resp = tools.post("/v1/channels/payments-slack/test")

    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "ok": True,
        "status_code": 200,
        "detail": f"posted to {CHANNEL}",
        "retryable": False,
    }
    [call] = slack.posted()
    assert call.channel == CHANNEL and call.token == TOKEN and "Tocsin test message" in (call.text or "")
    [record] = tools.get("/v1/audit", params={"action": "channel.tested"}).json()["items"]
    assert record["target_id"] == "payments-slack" and record["after"]["ok"] is True


def test_test_send_reports_a_bad_token_without_showing_it(
    tools: TestClient, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "xoxb-revoked-token-000000000"
    monkeypatch.setenv("TOCSIN_SECRET_TOOLS_BOT", wrong)

    resp = tools.post("/v1/channels/payments-slack/test")

    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is False and body["retryable"] is False and body["status_code"] == 200
    assert "invalid_auth" in body["detail"] and wrong not in resp.text
    assert slack.posted() == []


def test_test_send_applies_the_outbound_guard(tools: TestClient, slack: FakeSlack) -> None:
    guarded = tools.put(
        "/v1/channels/payments-slack",
        json={
            "name": "payments-slack",
            "team": "payments",
            "kind": "slack",
            "target": CHANNEL,
            "secret_ref": "TOOLS_BOT",
            "options": {"base_url": slack.url.replace("127.0.0.1", "localhost")},
        },
    )
    assert guarded.status_code == 200, guarded.text

    body = tools.post("/v1/channels/payments-slack/test").json()

    assert body["ok"] is False and body["detail"].startswith("refused:")
    assert slack.calls == []


def test_test_send_of_an_unknown_channel_is_404(tools: TestClient) -> None:
    assert tools.post("/v1/channels/nope/test").status_code == 404
