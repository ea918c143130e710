"""POST /v1/slack/interactions: a click on a triage button, signed as Slack signs it, on both databases.

The message the buttons sit on is posted to the fake Slack first, so the ``chat.update`` that shows the
new state is checked against a real message there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine, text

from app.clock import new_id
from app.db import unit_of_work
from app.main import create_app
from app.models import NotificationChannel
from app.settings import Settings, load_settings
from integrations.channels.slack_blocks import actions_block
from tests.conftest import ADMIN_TOKEN
from tests.fakes.slack import FakeSlack
from tests.helpers import finding, post

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-interactions-test-token-5d1e"
CHANNEL = "C0SECALERT"
USER = "U0ALICE42"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={CHANNEL: "security"}) as fake:
        yield fake


@pytest.fixture
def app_client(
    database_url: str, engine: Engine, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("TOCSIN_SECRET_SLACK_BOT", TOKEN)
    settings: Settings = load_settings(
        database_url=database_url,
        bootstrap_token=ADMIN_TOKEN,
        log_json=False,
        slack_signing_secret=SIGNING_SECRET,
        outbound_allow_hosts=["127.0.0.1"],
        dispatcher_embedded=False,
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
            "secret_ref": "SLACK_BOT",
            "options": {"base_url": slack.url},
        }
        assert client.post("/v1/channels", json=channel).status_code == 201, client.get("/v1/teams").text
        yield client


@pytest.fixture
def finding_id(app_client: TestClient) -> str:
    assert post(app_client, finding()).status_code in (200, 201, 207)
    [item] = app_client.get("/v1/findings").json()["items"]
    return str(item["id"])


def post_message(slack: FakeSlack, finding_id: str) -> dict[str, Any]:
    """The finding's message as the Slack channel posted it: what the click payload carries back."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*xz-utils backdoor*"}}]
    blocks.append(actions_block(finding_id))

    async def run() -> Any:
        client = AsyncWebClient(token=TOKEN, base_url=slack.url, retry_handlers=[])
        return await client.chat_postMessage(
            channel=CHANNEL, text="New HIGH: xz-utils backdoor", blocks=blocks
        )

    response = asyncio.run(run())
    return {"ts": response["ts"], "text": "New HIGH: xz-utils backdoor", "blocks": blocks, "type": "message"}


def click_body(action: str, finding_id: str, message: dict[str, Any]) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "alice", "name": "alice", "team_id": "T0FAKE"},
        "team": {"id": "T0FAKE"},
        "channel": {"id": CHANNEL, "name": "security"},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": CHANNEL},
        "message": message,
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": f"tocsin:{action}",
                "block_id": f"tocsin:actions:{finding_id}",
                "value": finding_id,
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, secret: str = SIGNING_SECRET, age: float = 0) -> dict[str, str]:
    timestamp = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or "",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/v1/slack/interactions", content=body, headers=headers)


def status(client: TestClient, finding_id: str) -> str:
    return str(client.get(f"/v1/findings/{finding_id}").json()["status"])


def slack_audit(client: TestClient) -> list[dict[str, Any]]:
    return list(client.get("/v1/audit", params={"actor": f"slack:{USER}"}).json()["items"])


def message_text(slack: FakeSlack, ts: str) -> str:
    return json.dumps(slack.messages[(CHANNEL, ts)]["blocks"], ensure_ascii=False)


def test_acknowledge_triages_audits_and_updates_the_message(
    app_client: TestClient, slack: FakeSlack, finding_id: str
) -> None:
    message = post_message(slack, finding_id)
    body = click_body("acknowledge", finding_id, message)

    resp = click(app_client, body, signed(body))

    assert resp.status_code == 200 and resp.content == b""
    assert status(app_client, finding_id) == "acknowledged"
    [record] = slack_audit(app_client)
    assert record["action"] == "finding.triage" and record["target_id"] == finding_id
    assert record["after"]["status"] == "acknowledged" and record["after"]["slack_user_name"] == "alice"
    events = app_client.get(f"/v1/findings/{finding_id}").json()["events"]
    assert events[0]["actor"] == f"slack:{USER}" and "alice" in events[0]["note"]
    [update] = slack.updated()
    assert update.channel == CHANNEL and update.params["ts"] == message["ts"] and update.token == TOKEN
    assert f"✅ Acknowledged by <@{USER}>" in message_text(slack, message["ts"])
    assert "tocsin:actions:" in message_text(slack, message["ts"])  # the buttons stay


@pytest.mark.parametrize(
    ("action", "expected"), [("resolve", "resolved"), ("false_positive", "false_positive")]
)
def test_resolve_and_false_positive(
    app_client: TestClient, slack: FakeSlack, finding_id: str, action: str, expected: str
) -> None:
    message = post_message(slack, finding_id)
    body = click_body(action, finding_id, message)

    assert click(app_client, body, signed(body)).status_code == 200

    assert status(app_client, finding_id) == expected
    assert [r["after"]["status"] for r in slack_audit(app_client)] == [expected]
    assert "by <@U0ALICE42>" in message_text(slack, message["ts"])


def test_snooze_creates_a_silence_of_that_finding_by_the_slack_user(
    app_client: TestClient, slack: FakeSlack, finding_id: str
) -> None:
    message = post_message(slack, finding_id)
    body = click_body("snooze", finding_id, message)

    assert click(app_client, body, signed(body)).status_code == 200

    [silence] = app_client.get("/v1/silences").json()
    assert silence["finding_id"] == finding_id and silence["created_by"] == f"slack:{USER}"
    assert "alice" in silence["reason"]
    ends = datetime.fromisoformat(silence["ends_at"])
    assert timedelta(days=6, hours=23) < ends - datetime.now(UTC) <= timedelta(days=7)
    [record] = slack_audit(app_client)
    assert record["action"] == "silence.created"
    assert status(app_client, finding_id) == "open"
    assert "💤 Snoozed until" in message_text(slack, message["ts"])


def test_open_ticket_without_a_ticket_channel_says_so_in_the_message(
    app_client: TestClient, slack: FakeSlack, finding_id: str
) -> None:
    message = post_message(slack, finding_id)
    body = click_body("open_ticket", finding_id, message)

    assert click(app_client, body, signed(body)).status_code == 200

    assert "has no ticket channel" in message_text(slack, message["ts"])
    assert slack_audit(app_client) == []


def test_open_ticket_queues_the_finding_for_the_teams_ticket_channel_now(
    app_client: TestClient, engine: Engine, slack: FakeSlack, finding_id: str
) -> None:
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        team_id = session.execute(text("SELECT id FROM teams WHERE name = 'payments'")).scalar_one()
        session.add(
            NotificationChannel(
                id=(jira_id := new_id()),
                name="payments-jira",
                team_id=team_id,
                kind="jira",
                target="SEC",
                options={},
                created_at=now,
                updated_at=now,
            )
        )
    message = post_message(slack, finding_id)
    body = click_body("open_ticket", finding_id, message)

    assert click(app_client, body, signed(body)).status_code == 200

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT n.finding_id, n.status, n.due_at, g.group_key FROM notifications n "
                "JOIN notification_groups g ON g.id = n.group_id WHERE n.channel_id = :c"
            ),
            {"c": jira_id},
        ).all()
    [(queued_finding, queued_status, due_at, group_key)] = rows
    assert (queued_finding, queued_status, group_key) == (finding_id, "pending", f"finding={finding_id}")
    due = due_at if isinstance(due_at, datetime) else datetime.fromisoformat(str(due_at))
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    assert due <= datetime.now(UTC)
    [record] = slack_audit(app_client)
    assert record["action"] == "finding.ticket_requested" and record["after"]["channel"] == "payments-jira"
    assert "🎫 Ticket requested" in message_text(slack, message["ts"])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="not-the-signing-secret"), id="wrong-secret"),
        pytest.param(lambda body: signed(body, age=6 * 60), id="stale-timestamp"),
        pytest.param(lambda body: {**signed(body), "X-Slack-Signature": ""}, id="missing-signature"),
        pytest.param(lambda body: {**signed(body), "X-Slack-Request-Timestamp": "soon"}, id="bad-timestamp"),
        pytest.param(lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="unsigned"),
    ],
)
def test_a_bad_or_old_signature_is_401_and_changes_nothing(
    app_client: TestClient, slack: FakeSlack, finding_id: str, headers: Any
) -> None:
    message = post_message(slack, finding_id)
    body = click_body("resolve", finding_id, message)

    resp = click(app_client, body, headers(body))

    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "unauthorized"
    assert status(app_client, finding_id) == "open"
    assert slack_audit(app_client) == []
    assert slack.updated() == []


def test_a_tampered_body_is_refused(app_client: TestClient, slack: FakeSlack, finding_id: str) -> None:
    message = post_message(slack, finding_id)
    headers = signed(click_body("acknowledge", finding_id, message))

    resp = click(app_client, click_body("resolve", finding_id, message), headers)

    assert resp.status_code == 401
    assert status(app_client, finding_id) == "open"


def test_an_unknown_finding_changes_nothing(
    app_client: TestClient, slack: FakeSlack, finding_id: str
) -> None:
    message = post_message(slack, finding_id)
    body = click_body("acknowledge", "0123456789abcdef0123456789abcdef", message)

    assert click(app_client, body, signed(body)).status_code == 200

    assert slack.updated() == [] and slack_audit(app_client) == []
    assert status(app_client, finding_id) == "open"


def test_an_impossible_transition_is_explained_in_the_message(
    app_client: TestClient, slack: FakeSlack, finding_id: str
) -> None:
    message = post_message(slack, finding_id)
    for _ in range(2):
        body = click_body("false_positive", finding_id, message)
        assert click(app_client, body, signed(body)).status_code == 200

    assert len(slack_audit(app_client)) == 1
    assert "already false_positive" in message_text(slack, message["ts"])


def test_interactions_are_refused_while_no_signing_secret_is_set(client: TestClient) -> None:
    body = urlencode({"payload": "{}"}).encode()

    resp = click(client, body, signed(body))

    assert resp.status_code == 401 and "TOCSIN_SLACK_SIGNING_SECRET" in resp.json()["detail"]
