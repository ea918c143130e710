"""The Slack channel through slack-sdk's real async client against a local fake Slack Web API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification
from integrations.channels import build_channel, validate_channel
from integrations.channels.slack_blocks import render
from integrations.testing_channels import (
    ConformanceError,
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_notification,
)
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-1234567890-test-bot-token-abcdef"
CHANNEL_ID = "C0123ABCD"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={CHANNEL_ID: "security", "C0PAYMENTS": "payments"}) as fake:
        yield fake


def make(slack: FakeSlack, target: str = CHANNEL_ID, token: str | None = TOKEN, **options: Any) -> Channel:
    return build_channel(
        "slack",
        target,
        {"base_url": slack.url, **options},
        None if token is None else SecretStr(token),
    )


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    """Send each notification in turn on one event loop, then close the channel, as delivery/ would."""

    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def send_one(slack: FakeSlack, notification: Notification | None = None, **options: Any) -> DeliveryResult:
    return send(make(slack, **options), notification or sample_notification())[0]


def test_posts_blocks_and_text_to_the_target_channel(slack: FakeSlack) -> None:
    notification = sample_notification(3)
    result = send_one(slack, notification)

    assert result.ok and not result.retryable and result.status_code == 200
    [call] = slack.posted()
    assert call.channel == CHANNEL_ID
    assert call.token == TOKEN
    assert call.params["unfurl_links"] is False
    assert call.thread_ts is None
    text, blocks = render(notification)
    assert call.text == text and call.blocks == blocks
    assert "3 new HIGH findings" in blocks[0]["text"]["text"]
    assert result.thread_ref == call.ts  # the first message starts the group's thread


def test_channel_name_targets_are_accepted(slack: FakeSlack) -> None:
    result = send_one(slack, target="#payments")

    assert result.ok
    assert slack.posted()[0].channel == "#payments"


def test_later_messages_of_a_group_reply_in_the_first_ones_thread(slack: FakeSlack) -> None:
    [first] = send(make(slack), sample_notification(2, notification_id="n1"))
    root = first.thread_ref
    assert root is not None and root == slack.posted()[0].ts

    replies = send(
        make(slack),
        sample_notification(1, notification_id="n4", thread_ref=root),
        sample_notification(1, notification_id="n5", event="resolved", thread_ref=root),
    )

    assert [r.thread_ref for r in replies] == [root, root]  # still the root, not the reply's own ts
    posted = slack.posted()
    assert [c.thread_ts for c in posted[-2:]] == [root, root]
    assert posted[-1].ts != root and posted[-1].ts is not None
    assert len({c.ts for c in posted}) == len(posted)  # every message got its own ts

    [other_group] = send(make(slack), sample_notification(1, notification_id="n6"))
    assert other_group.thread_ref not in (None, root)  # no thread_ref: a new thread of its own


def test_the_shared_rule_of_retry_classification_holds(slack: FakeSlack) -> None:
    results: dict[int | str, DeliveryResult] = {200: send_one(slack)}
    for kind, key in (("ratelimited", 429), ("server_error", 500), ("bad_gateway", 502)):
        slack.fail_next(kind)
        results[key] = send_one(slack)
    for code in ("invalid_auth", "channel_not_found", "not_in_channel", "is_archived", "service_unavailable"):
        slack.fail_next(code)
        results[code] = send_one(slack)
    slack.hang_next(3)
    results["timeout"] = send_one(slack, timeout_seconds=0.3)
    results["no_secret"] = send_one(slack, token=None)

    assert_retry_classification(
        results,
        expected={
            "invalid_auth": False,
            "channel_not_found": False,
            "not_in_channel": False,
            "is_archived": False,
            "service_unavailable": True,
        },
    )
    for result in results.values():
        assert_no_secret(result, TOKEN)


def test_rate_limit_is_retryable_and_says_when(slack: FakeSlack) -> None:
    slack.fail_next("ratelimited", retry_after=30)

    result = send_one(slack)

    assert not result.ok and result.retryable
    assert result.status_code == 429
    assert result.retry_after_seconds == 30
    assert "ratelimited" in result.detail
    assert len(slack.calls) == 1  # no hidden retry inside the channel: delivery/ owns retries


def test_server_errors_are_retryable_and_not_retried_by_the_client(slack: FakeSlack) -> None:
    slack.fail_next("server_error", times=3)

    result = send_one(slack)

    assert (result.ok, result.retryable, result.status_code) == (False, True, 500)
    assert len(slack.calls) == 1


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "token_revoked"])
def test_auth_and_channel_errors_are_final(slack: FakeSlack, error: str) -> None:
    slack.fail_next(error)

    result = send_one(slack)

    assert not result.ok and not result.retryable
    assert result.detail == f"slack error {error} (HTTP 200)"


def test_a_wrong_token_is_final_and_never_shown(slack: FakeSlack) -> None:
    wrong = "xoxb-9999999999-not-the-right-token"

    result = send_one(slack, token=wrong)

    assert not result.ok and not result.retryable
    assert "invalid_auth" in result.detail
    assert_no_secret(result, wrong)
    assert slack.calls[0].token == wrong


def test_an_unknown_channel_is_final(slack: FakeSlack) -> None:
    result = send_one(slack, target="C0NOTHERE1")

    assert not result.ok and not result.retryable
    assert result.detail == "slack error channel_not_found (HTTP 200)"


def test_a_hanging_slack_is_a_retryable_timeout(slack: FakeSlack) -> None:
    slack.hang_next(5)

    result = send_one(slack, timeout_seconds=0.3)

    assert not result.ok and result.retryable
    assert "timed out" in result.detail


def test_an_unreachable_slack_is_retryable(slack: FakeSlack) -> None:
    url = slack.url
    slack.stop()

    result = send(
        build_channel("slack", CHANNEL_ID, {"base_url": url}, SecretStr(TOKEN)), sample_notification()
    )[0]

    assert not result.ok and result.retryable
    assert_no_secret(result, TOKEN)


def test_a_missing_token_is_final_and_says_how_to_fix_it(slack: FakeSlack) -> None:
    result = send_one(slack, token=None)

    assert not result.ok and not result.retryable
    assert result.detail == "slack channel needs a bot token: set secret_ref"
    assert slack.calls == []


def test_scripted_failures_can_target_one_channel(slack: FakeSlack) -> None:
    slack.fail_next("ratelimited", channel="C0PAYMENTS")

    ok = send_one(slack)
    limited = send_one(slack, target="#payments")

    assert ok.ok and limited.retryable and limited.status_code == 429


def test_everything_the_renderer_produces_is_accepted(slack: FakeSlack) -> None:
    cases = [
        sample_notification(1),
        sample_notification(60, total=200),
        sample_notification(48),
        sample_notification(3, title="T" * 10_000),
        sample_notification(2, title="<!channel> & <https://evil.example|click> 🚨" * 200, digest=True),
        sample_notification(4, event="resolved"),
    ]

    results = send(make(slack), *cases)

    assert [r.detail for r in results if not r.ok] == []


def test_the_fake_rejects_what_slack_rejects(slack: FakeSlack) -> None:
    """The fake is only useful if it refuses what Slack refuses; check it with slack-sdk directly."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    async def post(**kwargs: Any) -> str:
        client = AsyncWebClient(token=TOKEN, base_url=slack.url, retry_handlers=[])
        try:
            await client.chat_postMessage(channel=CHANNEL_ID, **kwargs)
        except SlackApiError as exc:
            return str(exc.response["error"])
        return "ok"

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    assert asyncio.run(post(text="hi", blocks=[section] * 51)) == "invalid_blocks"
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert asyncio.run(post(text="hi", blocks=[long_section])) == "invalid_blocks"
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    assert asyncio.run(post(text="hi", blocks=[header])) == "invalid_blocks"
    with pytest.warns(UserWarning, match="text"):
        assert asyncio.run(post(text="")) == "no_text"
    assert asyncio.run(post(text="hi")) == "ok"


def test_invalid_blocks_is_final_and_explained(slack: FakeSlack) -> None:
    slack.fail_next("invalid_blocks")

    result = send_one(slack)

    assert not result.ok and not result.retryable


def test_the_fake_serves_auth_test_and_chat_update(slack: FakeSlack) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    async def run() -> tuple[Any, Any]:
        client = AsyncWebClient(token=TOKEN, base_url=slack.url, retry_handlers=[])
        who = await client.auth_test()
        posted = await client.chat_postMessage(channel=CHANNEL_ID, text="first")
        updated = await client.chat_update(channel=CHANNEL_ID, ts=posted["ts"], text="second")
        return who, updated

    who, updated = asyncio.run(run())

    assert who["ok"] and who["user_id"]
    assert updated["ok"] and updated["text"] == "second"
    assert [c.method for c in slack.calls] == ["auth.test", "chat.postMessage", "chat.update"]


def test_channel_satisfies_the_protocol_and_names_its_endpoint(slack: FakeSlack) -> None:
    channel = make(slack)

    assert_channel_shape(channel)
    assert channel.kind == "slack"
    assert channel.endpoint == slack.url
    default = build_channel("slack", CHANNEL_ID, {}, SecretStr(TOKEN))
    assert default.endpoint == "https://slack.com/api/"


def test_the_conformance_kit_catches_a_misclassifying_channel() -> None:
    final_503 = DeliveryResult(ok=False, retryable=False, status_code=503, detail="slack HTTP 503")
    with pytest.raises(ConformanceError, match="503"):
        assert_retry_classification({503: final_503})
    with pytest.raises(ConformanceError, match="no rule"):
        assert_retry_classification({"weird": final_503})
    leaky = DeliveryResult(ok=False, detail=f"bad token {TOKEN}")
    with pytest.raises(ConformanceError):
        assert_no_secret(leaky, TOKEN)


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        (CHANNEL_ID, {"retries": 3}, "options.retries"),
        (CHANNEL_ID, {"public_url": "https://x"}, "options.public_url"),
        (CHANNEL_ID, {"timeout_seconds": 0}, "options.timeout_seconds"),
        (CHANNEL_ID, {"timeout_seconds": "soon"}, "options.timeout_seconds"),
        (CHANNEL_ID, {"base_url": "ftp://slack.com/api/"}, "options.base_url"),
        ("security alerts", {}, "target"),
        ("", {}, "target"),
    ],
)
def test_invalid_options_are_rejected_by_name(target: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as caught:
        validate_channel("slack", target, options)
    assert "invalid slack channel" in str(caught.value)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build_channel("slack", target, options, SecretStr(TOKEN))


def test_valid_channels_and_unknown_kinds() -> None:
    validate_channel(
        "slack", "C0123ABCD", {"base_url": "https://slack.example.com/api", "timeout_seconds": 5}
    )
    validate_channel("slack", "#security-alerts", None)
    validate_channel("SLACK", "G0PRIVATE1", {})
    with pytest.raises(ValueError, match=r"unknown channel kind 'pager'.*slack"):
        validate_channel("pager", "x", {})


def test_host_names_resolving_to_private_addresses_are_refused_when_connecting(slack: FakeSlack) -> None:
    """The connect-time guard (DNS rebinding): ``localhost`` resolves to loopback, so the bot never
    connects unless the deployment allow-lists it. IP literals cannot rebind; delivery/ checks those before
    sending."""
    from app.contracts import OutboundPolicy

    url = slack.url.replace("127.0.0.1", "localhost")
    channel = build_channel("slack", CHANNEL_ID, {"base_url": url}, SecretStr(TOKEN), OutboundPolicy())
    [refused] = send(channel, sample_notification())
    assert not refused.ok and slack.posted() == []
    allowed = OutboundPolicy(frozenset({"localhost"}))
    channel = build_channel("slack", CHANNEL_ID, {"base_url": url}, SecretStr(TOKEN), allowed)
    [sent] = send(channel, sample_notification())
    assert sent.ok and len(slack.posted()) == 1
