"""Secret hygiene in messages: a credential planted in a finding's text reaches no channel.

``build_message`` masks every text field by shape (``mask_secrets_in_text``), so this holds for every
channel kind; the end-to-end test sends through the dispatcher to the fake Slack and searches everything
that was posted."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import update

from app.db import unit_of_work
from app.delivery.dispatcher import Dispatcher
from app.delivery.messages import build_message
from app.models.findings import Finding
from integrations.sources.secrets import mask_secrets_in_text
from tests.delivery.conftest import World

AWS_KEY_ID = "AKIAZ7QW3ERTY5UIOP12"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz9Qk2mXv3n"
SLACK_TOKEN = "xoxb-2231-98765432109-Zq8wXc7vBn6mAs5d"
GITHUB_TOKEN = "ghp_R4nd0mT0k3nV4lu3Th4tL00ksR34l1234567"
PASSWORD = "correct-horse-battery-staple"
PLANTED = {
    "title": f"Leaked key {AWS_KEY_ID} in build log",
    "remediation": f"Rotate aws_secret_access_key={AWS_SECRET} and revoke {SLACK_TOKEN}",
    "resource_id": f"https://ci.example.com/logs?token={GITHUB_TOKEN}",
    "path": f"deploy/password={PASSWORD}/env",
}
SECRETS = (AWS_KEY_ID, AWS_SECRET, SLACK_TOKEN, GITHUB_TOKEN, PASSWORD)


@pytest.mark.parametrize(
    ("text", "secret", "masked"),
    [
        (f"key {AWS_KEY_ID} here", AWS_KEY_ID, "AKIA…(20)"),
        (f"token {SLACK_TOKEN}", SLACK_TOKEN, "xoxb…(38)"),
        (f"use {GITHUB_TOKEN}.", GITHUB_TOKEN, "ghp_…(40)"),
        (f'password: "{PASSWORD}"', PASSWORD, "corr…(28)"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "MIIEvQIBADANBg", "…("),
        ("https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX", "XXXXsecretXXXX", "http…("),
    ],
)
def test_credential_shapes_are_masked_in_text(text: str, secret: str, masked: str) -> None:
    out = mask_secrets_in_text(text)

    assert secret not in out and masked in out
    assert mask_secrets_in_text(out) == out  # a masked form is never masked again


def test_ordinary_finding_text_is_left_alone() -> None:
    for text in (
        "S3 bucket allows public read access",
        "arn:aws:s3:::acme-payments-exports",
        "Turn on S3 Block Public Access; rotate the token in the vault.",
        "CVE-2024-3094 in xz-utils 5.6.0",
    ):
        assert mask_secrets_in_text(text) == text


def test_build_message_masks_every_text_field() -> None:
    row = {
        "id": "f1",
        "severity": 80.0,
        "severity_label": "high",
        "score": 80.0,
        "score_breakdown": {"factors": [{"value": 1.5, "reason": f"verified live key {AWS_KEY_ID}"}]},
        "status": "open",
        "source": "test",
        "type": f"leak-{SLACK_TOKEN}",
        "repository": f"github.com/acme/shop?t={GITHUB_TOKEN}",
        "first_seen": "2026-03-02T12:00:00Z",
        "last_seen": "2026-03-02T12:00:00Z",
        **PLANTED,
    }
    message = build_message(
        message_id="m1",
        team="payments",
        channel_name="payments-slack",
        group_key="g",
        group_labels={},
        thread_ref=None,
        digest=False,
        items=[("new", row)],
        public_url=None,
    )

    dumped = message.model_dump_json()
    for secret in SECRETS:
        assert secret not in dumped
    assert "AKIA…(20)" in message.findings[0].title


def test_a_secret_planted_in_a_finding_reaches_no_slack_message(world: World) -> None:
    [fid] = world.add_findings(1)
    with unit_of_work(world.engine) as session:
        session.execute(update(Finding).where(Finding.id == fid).values(**PLANTED))  # type: ignore[arg-type]
    world.enqueue([fid], group_wait=0)

    async def go() -> None:
        dispatcher = Dispatcher(world.engine, world.settings, clock=world.clock, worker_id="test")
        try:
            await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    asyncio.run(go())

    [call] = world.slack.posted()
    posted = json.dumps({"text": call.text, "blocks": call.blocks}, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in posted, secret
    assert "AKIA…(20)" in posted
