"""The signed webhook channel through its real httpx client against a local receiver that verifies the
signature with the example from docs/webhooks.md; the payload against its published schema; retries,
secrets and the outbound guard."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification, OutboundPolicy
from integrations.channels import build_channel, validate_channel
from integrations.channels.webhook import WebhookPayload, payload_schema, signature
from integrations.testing_channels import (
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_finding,
    sample_notification,
)
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "whsec_test_0123456789abcdefghijklmnop"
LOCAL = OutboundPolicy(frozenset({"127.0.0.1"}))
DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def documented_verify() -> Callable[..., bool]:
    """The receiver's verification function exactly as docs/webhooks.md shows it."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)  # the documentation's own example
    return cast(Callable[..., bool], namespace["verify"])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET.encode(), verify=documented_verify()) as fake:
        yield fake


def make(
    receiver: WebhookReceiver, secret: str | None = SECRET, policy: OutboundPolicy = LOCAL, **options: Any
) -> Channel:
    opts = {"insecure": True, **options}
    return build_channel(
        "webhook", receiver.hook_url, opts, None if secret is None else SecretStr(secret), policy
    )


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def send_one(
    receiver: WebhookReceiver, notification: Notification | None = None, **kwargs: Any
) -> DeliveryResult:
    return send(make(receiver, **kwargs), notification or sample_notification(2))[0]


def test_payload_is_signed_and_verified_by_the_documented_receiver(receiver: WebhookReceiver) -> None:
    notification = sample_notification(3, total=5)
    result = send_one(receiver, notification)

    assert result.ok and result.status_code == 204
    assert receiver.verified == [True]
    [request] = receiver.requests
    assert request.headers["x-tocsin-message-id"] == notification.id
    assert request.headers["x-tocsin-event"] == "new"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["schema"] == "tocsin.finding.v1"
    assert body["event"] == "new" and body["team"] == "payments"
    assert body["group"] == {"key": notification.group_key, "labels": notification.group_labels}
    assert body["total"] == 5 and len(body["findings"]) == 3 and body["message_id"] == notification.id
    assert body["findings"][0]["resource"]["id"] == "arn:aws:s3:::acme-payments-exports-0"
    assert body["findings"][0]["score_reasons"] == notification.findings[0].score_reasons
    WebhookPayload.model_validate(body)  # the body follows the published schema
    t = int(request.headers["x-tocsin-signature"].split(",")[0].removeprefix("t="))
    assert abs(time.time() - t) < 60


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"schema":"tocsin.finding.v1"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_fail_verification(
    receiver: WebhookReceiver,
) -> None:
    verify = documented_verify()
    assert send_one(receiver).ok
    request = receiver.requests[0]
    header, body = request.headers["x-tocsin-signature"], request.body

    assert verify(SECRET.encode(), header, body)
    assert not verify(SECRET.encode(), header, body.replace(b'"payments"', b'"attacker"', 1))
    assert not verify(b"another-secret", header, body)
    old = signature(SECRET.encode(), int(time.time()) - 3600, body)
    assert not verify(SECRET.encode(), old, body)
    assert not verify(SECRET.encode(), "garbage", body)


def test_a_receiver_with_another_secret_refuses_and_the_failure_is_final(receiver: WebhookReceiver) -> None:
    result = send_one(receiver, secret="whsec_not_the_receivers_secret_0000")

    assert not result.ok and not result.retryable and result.status_code == 401
    assert receiver.verified == [False]
    assert_no_secret(result, "whsec_not_the_receivers_secret_0000")


def test_mixed_events_and_resolutions(receiver: WebhookReceiver) -> None:
    base = sample_notification(2)
    mixed = base.model_copy(update={"findings": [sample_finding(0, event="regressed"), sample_finding(1)]})
    resolved = base.model_copy(update={"findings": [sample_finding(0, event="resolved")], "total": 1})

    assert all(r.ok for r in send(make(receiver), mixed, resolved))
    assert [r.json()["event"] for r in receiver.requests] == ["mixed", "resolved"]
    assert receiver.requests[1].json()["findings"][0]["status"] == "resolved"


def test_the_message_id_is_the_same_on_every_retry(receiver: WebhookReceiver) -> None:
    receiver.fail_next(503)
    notification = sample_notification(1)
    results = send(make(receiver), notification, notification)

    assert not results[0].ok and results[0].retryable and results[1].ok
    assert {r.headers["x-tocsin-message-id"] for r in receiver.requests} == {notification.id}


def test_the_published_schema_matches_the_code() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert json.loads(blocks[-1]) == payload_schema()
    example = json.loads(blocks[0])
    WebhookPayload.model_validate(example)


def test_the_shared_rule_of_retry_classification_holds(receiver: WebhookReceiver) -> None:
    results: dict[int | str, DeliveryResult] = {204: send_one(receiver)}
    receiver.fail_next(429, retry_after=12)
    results[429] = send_one(receiver)
    for status in (500, 502, 503, 410, 400, 404, 422):
        receiver.fail_next(status, body=f"<html>error {status}</html>")
        results[status] = send_one(receiver)
    receiver.fail_next(302, headers={"Location": "http://169.254.169.254/"})
    results[302] = send_one(receiver)
    receiver.hang_next(3)
    results["timeout"] = send_one(receiver, timeout_seconds=0.3)
    results["no_secret"] = send_one(receiver, secret=None)

    assert_retry_classification(results, expected={302: False})
    assert results[429].retry_after_seconds == 12
    assert "gone" in results[410].detail
    assert "redirects are not followed" in results[302].detail
    assert len(receiver.requests) == 11  # the redirect was not followed
    for result in results.values():
        assert_no_secret(result, SECRET)


def test_an_unreachable_receiver_is_retryable(receiver: WebhookReceiver) -> None:
    url = receiver.hook_url
    receiver.stop()

    result = send(
        build_channel("webhook", url, {"insecure": True}, SecretStr(SECRET), LOCAL), sample_notification(1)
    )[0]

    assert not result.ok and result.retryable
    assert_no_secret(result, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.8/hook",
        "http://172.20.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_internal_addresses_are_refused_unless_allow_listed(url: str) -> None:
    channel = build_channel("webhook", url, {"insecure": True}, SecretStr(SECRET))

    result = send(channel, sample_notification(1))[0]

    assert not result.ok and not result.retryable and "refused" in result.detail
    assert_no_secret(result, SECRET)


def test_the_allow_list_lets_the_receiver_through_and_nothing_else(receiver: WebhookReceiver) -> None:
    assert not send_one(receiver, policy=OutboundPolicy()).ok
    assert send_one(receiver, policy=LOCAL).ok
    assert len(receiver.requests) == 1


def test_https_is_required_unless_insecure() -> None:
    with pytest.raises(ValueError, match="https"):
        validate_channel("webhook", "http://hooks.example.com/x", {})
    validate_channel("webhook", "https://hooks.example.com/x", {})
    validate_channel("webhook", "http://localhost:8080/x", {"insecure": True})


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        ("not a url", {}, "target"),
        ("ftp://hooks.example.com/", {}, "target"),
        ("https://user:pw@hooks.example.com/", {}, "credentials"),
        ("https://hooks.example.com/", {"timeout_seconds": 500}, "options.timeout_seconds"),
        ("https://hooks.example.com/", {"secret": "x"}, "options.secret"),
    ],
)
def test_invalid_config_is_rejected_by_name(target: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        validate_channel("webhook", target, options)


def test_render_shows_the_payload_a_preview_would_send() -> None:
    from integrations.channels import CHANNEL_KINDS

    body = CHANNEL_KINDS["webhook"].render(sample_notification(2))  # type: ignore[attr-defined]
    assert WebhookPayload.model_validate(body).schema_ == "tocsin.finding.v1"
    assert len(body["findings"]) == 2


def test_channel_satisfies_the_protocol(receiver: WebhookReceiver) -> None:
    channel = make(receiver)
    assert_channel_shape(channel)
    assert channel.kind == "webhook" and channel.endpoint == receiver.hook_url
