"""The PagerDuty Events v2 channel through its real httpx client against a local fake Events API: trigger,
acknowledge and resolve one alert per group with a stable dedup_key, the severity floor, errors and the
outbound guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.contracts import Channel, DeliveryResult, Notification, OutboundPolicy, Severity
from integrations.channels import build_channel, validate_channel
from integrations.channels.pagerduty import dedup_key
from integrations.testing_channels import (
    assert_channel_shape,
    assert_no_secret,
    assert_retry_classification,
    sample_finding,
    sample_notification,
)
from tests.fakes.pagerduty import FakePagerDuty

ROUTING_KEY = "R0123456789abcdef0123456789abcde"
SERVICE = "payments-oncall"
LOCAL = OutboundPolicy(frozenset({"127.0.0.1"}))


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_keys=(ROUTING_KEY,)) as fake:
        yield fake


def make(
    pd: FakePagerDuty, key: str | None = ROUTING_KEY, policy: OutboundPolicy = LOCAL, **options: Any
) -> Channel:
    opts = {"events_url": pd.url, "insecure": True, **options}
    return build_channel("pagerduty", SERVICE, opts, None if key is None else SecretStr(key), policy)


def send(channel: Channel, *notifications: Notification) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return [await channel.send(n) for n in notifications]
        finally:
            await channel.aclose()

    return asyncio.run(run())


def send_one(pd: FakePagerDuty, notification: Notification | None = None, **kwargs: Any) -> DeliveryResult:
    return send(make(pd, **kwargs), notification or sample_notification(2))[0]


def message(
    event: str = "new", status: str | None = None, severity: Severity = Severity.high, n: int = 2
) -> Notification:
    findings = [
        sample_finding(i, event=event, severity=severity).model_copy(  # type: ignore[arg-type]
            update={"status": status} if status else {}
        )
        for i in range(n)
    ]
    return sample_notification(n).model_copy(update={"findings": findings})


def test_trigger_acknowledge_resolve_share_one_dedup_key(pd: FakePagerDuty) -> None:
    results = send(
        make(pd),
        message("new"),
        message("reminder"),
        message("reminder", status="acknowledged"),
        message("resolved"),
    )

    assert all(r.ok and r.status_code == 202 for r in results), results
    key = sample_notification().group_key
    assert [e["event_action"] for e in pd.events] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in pd.events} == {key}
    assert {r.thread_ref for r in results} == {key}
    assert pd.alerts[key].status == "resolved"


def test_trigger_payload_follows_the_v2_schema(pd: FakePagerDuty) -> None:
    notification = sample_notification(3, severity=Severity.critical)
    assert send_one(pd, notification).ok

    [event] = pd.events
    payload = event["payload"]
    assert event["routing_key"] == ROUTING_KEY
    assert payload["severity"] == "critical"
    assert payload["summary"].startswith("[CRITICAL] S3 bucket allows public read access #0 — arn:aws:s3:::")
    assert payload["summary"].endswith("(+2 more)")
    assert payload["source"] == "arn:aws:s3:::acme-payments-exports-0"
    details = payload["custom_details"]
    assert details["team"] == "payments" and details["service"] == SERVICE and details["total"] == 3
    assert details["findings"][0]["score_reasons"] == notification.findings[0].score_reasons


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.critical, "critical"),
        (Severity.high, "error"),
        (Severity.medium, "warning"),
        (Severity.low, "info"),
    ],
)
def test_severity_is_mapped(pd: FakePagerDuty, severity: Severity, expected: str) -> None:
    assert send_one(pd, message(severity=severity), min_severity="low").ok
    assert pd.events[0]["payload"]["severity"] == expected


def test_findings_below_the_floor_do_not_page(pd: FakePagerDuty) -> None:
    result = send_one(pd, message(severity=Severity.medium))

    assert result.ok and "nothing at or above high" in result.detail
    assert pd.events == []
    assert send_one(pd, message(severity=Severity.medium), min_severity="medium").ok
    assert len(pd.events) == 1


def test_a_long_summary_is_cut_to_pagerdutys_limit_and_long_group_keys_are_hashed(pd: FakePagerDuty) -> None:
    notification = sample_notification(1, title="x" * 600).model_copy(update={"group_key": "k" * 400})
    long_title = notification.model_copy(
        update={"findings": [notification.findings[0].model_copy(update={"title": "y" * 2000})]}
    )
    result = send_one(pd, long_title)

    assert result.ok, result.detail
    assert len(pd.events[0]["payload"]["summary"]) == 1024
    assert pd.events[0]["dedup_key"] == dedup_key("k" * 400) and len(dedup_key("k" * 400)) <= 255


def test_a_rejected_event_is_final_and_says_why(pd: FakePagerDuty) -> None:
    wrong = "W" * 32
    result = send_one(pd, key=wrong)

    assert not result.ok and not result.retryable and result.status_code == 400
    assert "Invalid routing key" in result.detail
    assert_no_secret(result, wrong)


def test_the_fake_validates_the_v2_schema(pd: FakePagerDuty) -> None:
    from tests.fakes.pagerduty import validate_event

    assert validate_event({"routing_key": "short", "event_action": "explode"}) == [
        "'routing_key' is invalid: must be 32 characters",
        "'event_action' is invalid",
    ]
    trigger = {"routing_key": "R" * 32, "event_action": "trigger", "payload": {"summary": "s"}}
    assert "'payload.source' is missing or blank" in validate_event(trigger)
    assert "'dedup_key' is missing or blank" in validate_event(
        {"routing_key": "R" * 32, "event_action": "resolve"}
    )


def test_the_shared_rule_of_retry_classification_holds(pd: FakePagerDuty) -> None:
    results: dict[int | str, DeliveryResult] = {202: send_one(pd)}
    pd.fail_next(429, retry_after=30)
    results[429] = send_one(pd)
    for status in (500, 502, 503):
        pd.fail_next(status, body="<html>oops</html>")
        results[status] = send_one(pd)
    pd.fail_next(400, body={"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]})
    results[400] = send_one(pd)
    pd.fail_next(403)
    results[403] = send_one(pd)
    pd.hang_next(3)
    results["timeout"] = send_one(pd, timeout_seconds=0.3)
    results["no_secret"] = send_one(pd, key=None)

    assert_retry_classification(results)
    assert results[429].retry_after_seconds == 30
    for result in results.values():
        assert_no_secret(result, ROUTING_KEY)


def test_an_unreachable_pagerduty_is_retryable(pd: FakePagerDuty) -> None:
    url = pd.url
    pd.stop()

    result = send(
        build_channel(
            "pagerduty", SERVICE, {"events_url": url, "insecure": True}, SecretStr(ROUTING_KEY), LOCAL
        ),
        sample_notification(1),
    )[0]

    assert not result.ok and result.retryable
    assert_no_secret(result, ROUTING_KEY)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://192.168.1.1", "http://169.254.169.254"])
def test_internal_addresses_are_refused_unless_allow_listed(url: str) -> None:
    channel = build_channel(
        "pagerduty", SERVICE, {"events_url": url, "insecure": True}, SecretStr(ROUTING_KEY)
    )

    result = send(channel, sample_notification(1))[0]

    assert not result.ok and not result.retryable and "refused" in result.detail
    assert_no_secret(result, ROUTING_KEY)


def test_the_allow_list_lets_the_fake_through_and_nothing_else(pd: FakePagerDuty) -> None:
    assert not send_one(pd, policy=OutboundPolicy()).ok
    assert send_one(pd, policy=LOCAL).ok


def test_https_is_required_unless_insecure() -> None:
    with pytest.raises(ValueError, match="https"):
        validate_channel("pagerduty", SERVICE, {"events_url": "http://events.example.com"})
    validate_channel("pagerduty", SERVICE, {})
    validate_channel("pagerduty", SERVICE, {"events_url": "http://localhost:1", "insecure": True})


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        ("", {}, "target"),
        (SERVICE, {"min_severity": "urgent"}, "options.min_severity"),
        (SERVICE, {"timeout_seconds": -1}, "options.timeout_seconds"),
        (SERVICE, {"routing_key": "x"}, "options.routing_key"),
    ],
)
def test_invalid_config_is_rejected_by_name(target: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        validate_channel("pagerduty", target, options)


def test_render_shows_the_event_a_preview_would_send() -> None:
    from integrations.channels import CHANNEL_KINDS
    from tests.fakes.pagerduty import validate_event

    render = CHANNEL_KINDS["pagerduty"].render  # type: ignore[attr-defined]
    event = render(message(severity=Severity.low))
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "info"
    assert validate_event({"routing_key": ROUTING_KEY, **event}) == []
    assert render(message("resolved")) == {"event_action": "resolve", "dedup_key": event["dedup_key"]}


def test_channel_satisfies_the_protocol(pd: FakePagerDuty) -> None:
    channel = make(pd)
    assert_channel_shape(channel)
    assert channel.kind == "pagerduty"
