"""Slack beyond a plain post: the root message updated when findings resolve at their source, and the
incoming-webhook mode for teams without a bot (no threads, no buttons, no updates, the URL kept secret)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification
from integrations.channels import build_channel, validate_channel
from integrations.testing_channels import assert_no_secret, sample_notification
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-1234567890-test-bot-token-abcdef"
CHANNEL_ID = "C0123ABCD"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={CHANNEL_ID: "security"}) as fake:
        yield fake


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def bot(slack: FakeSlack) -> Channel:
    return build_channel("slack", CHANNEL_ID, {"base_url": slack.url}, SecretStr(TOKEN))


def webhook(slack: FakeSlack, url: str | None = None) -> Channel:
    return build_channel("slack", CHANNEL_ID, {"mode": "webhook"}, SecretStr(url or slack.webhook_url))


def test_a_resolution_replies_in_the_thread_and_marks_the_root_resolved(slack: FakeSlack) -> None:
    [first] = send(bot(slack), sample_notification(1, notification_id="n1"))
    root = first.thread_ref
    assert root is not None

    [resolved] = send(
        bot(slack), sample_notification(1, notification_id="n2", event="resolved", thread_ref=root)
    )

    assert resolved.ok and resolved.thread_ref == root
    assert "root message marked resolved" in resolved.detail
    assert slack.posted()[-1].thread_ts == root  # the reply
    [update] = slack.updated()
    assert update.channel == CHANNEL_ID and update.params["ts"] == root
    message = slack.messages[(CHANNEL_ID, root)]
    assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark:")
    assert "Resolved at the source" in json.dumps(message["blocks"])
    assert not [b for b in message["blocks"] if b["type"] == "actions"]  # nothing left to triage


def test_other_thread_replies_and_first_messages_update_nothing(slack: FakeSlack) -> None:
    [first] = send(bot(slack), sample_notification(1, event="resolved"))  # no thread yet: nothing to update
    send(bot(slack), sample_notification(2, notification_id="n2", thread_ref=first.thread_ref))

    assert slack.updated() == []


def test_a_failed_root_update_does_not_fail_the_posted_reply(slack: FakeSlack) -> None:
    [resolved] = send(bot(slack), sample_notification(1, event="resolved", thread_ref="1700000000.000001"))

    assert resolved.ok
    assert "root not updated: slack error message_not_found" in resolved.detail


def test_webhook_mode_posts_through_the_incoming_webhook_without_buttons_or_threads(slack: FakeSlack) -> None:
    [result] = send(webhook(slack), sample_notification(3, thread_ref="1700000000.000001"))

    assert result.ok and result.thread_ref is None and result.status_code == 200
    [call] = [c for c in slack.calls if c.method == "webhook"]
    assert call.error is None and call.blocks and "3 new HIGH findings" in call.blocks[0]["text"]["text"]
    assert not [b for b in call.blocks if b["type"] == "actions"]
    assert "thread_ts" not in call.params
    assert slack.posted() == []  # no Web API call, no token


def test_webhook_mode_names_only_the_origin_as_its_endpoint(slack: FakeSlack) -> None:
    channel = webhook(slack)

    assert channel.endpoint == slack.url.removesuffix("api/")
    assert "services" not in channel.endpoint
    validate_channel("slack", CHANNEL_ID, {"mode": "webhook"})
    with pytest.raises(ValueError, match=r"options\.mode"):
        validate_channel("slack", CHANNEL_ID, {"mode": "carrier-pigeon"})


def test_webhook_failures_are_classified_and_never_show_the_url(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = slack.webhook_url.replace("WEBHOOK", "REVOKED")
    [gone] = send(webhook(slack, wrong), sample_notification())
    slack.fail_next("ratelimited", retry_after=3)
    [limited] = send(webhook(slack), sample_notification())
    slack.fail_next("server_error")
    [broken] = send(webhook(slack), sample_notification())
    [missing] = send(build_channel("slack", CHANNEL_ID, {"mode": "webhook"}, None), sample_notification())

    assert not gone.ok and not gone.retryable and gone.status_code == 404 and "no_service" in gone.detail
    assert limited.retryable and limited.retry_after_seconds == 3
    assert broken.retryable and broken.status_code == 500
    assert not missing.ok and not missing.retryable and "incoming-webhook URL" in missing.detail
    for result, url in ((gone, wrong), (limited, slack.webhook_url), (broken, slack.webhook_url)):
        assert_no_secret(result, url)
        assert_no_secret(result, slack.webhook_path)
    assert slack.webhook_path.rsplit("/", 1)[-1] not in caplog.text
