"""Issue 6 end to end, on SQLite and PostgreSQL: with examples/tocsin.yaml applied, findings posted to Tocsin
reach the right (fake) Slack channel grouped, threaded and deduplicated; a silence and quiet hours hold
messages back, explain says why, and the held messages go out when the silence ends / the window closes.

Only the Slack base URL and pacing of the example's channels are changed (they point at the local fake).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import cli
from app.delivery.dispatcher import Dispatcher
from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.fakes.slack import FakeSlack
from tests.helpers import finding

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "xoxb-end-to-end-3c1f"
SLACK_CHANNELS = {
    "C01SECOPS0": "secops",
    "CPLATFORM1": "platform-security",
    "C02PAYMENT": "payments",
    "C03DATAENG": "data",
    "C04APPSEC0": "appsec",
    "C05IDENTTY": "identity",
}
# A Wednesday 15:00 UTC: no team of the example is in quiet hours except identity (Singapore, 23:00).
AFTERNOON = datetime(2030, 1, 16, 15, 0, tzinfo=UTC)


@pytest.fixture
def world(
    tmp_path: Path, settings: Settings, engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, FakeSlack, Settings]]:
    with FakeSlack(token=TOKEN, channels=SLACK_CHANNELS) as slack:
        config = yaml.safe_load((ROOT / "examples" / "tocsin.yaml").read_text())
        for channel in config["channels"]:
            if channel["kind"] == "slack":
                channel["options"] = {
                    **channel.get("options", {}),
                    "base_url": slack.url,
                    "rate_per_second": 1000,
                }
        path = tmp_path / "tocsin.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        assert cli.main(["apply", str(path), "--database-url", database_url]) == 0

        monkeypatch.setenv("TOCSIN_SECRET_SLACK_BOT", TOKEN)
        configured = settings.model_copy(
            update={"dispatcher_embedded": False, "outbound_allow_hosts": ["127.0.0.1"]}
        )
        with TestClient(
            create_app(configured, engine), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as client:
            yield client, slack, configured


def deliver(engine: Engine, settings: Settings, at: datetime) -> None:
    dispatcher = Dispatcher(engine, settings, clock=lambda: at)

    async def run() -> None:
        try:
            await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    asyncio.run(run())


def bucket_finding(n: int, bucket: str = "acme-invoices", **overrides: Any) -> dict[str, Any]:
    base = finding(
        source="guardduty",
        source_id=f"gd-{bucket}-{n}",
        type=f"Policy:S3/Check{n % 2}",
        title=f"S3 finding {n} on {bucket}",
        severity="high",
        resource={
            "type": "AwsS3Bucket",
            "id": f"arn:aws:s3:::{bucket}",
            "account_id": "999999999999",
            "region": "eu-west-1",
            "tags": {"owner": "payments"},
        },
    )
    base.update(overrides)
    return base


def post(client: TestClient, *findings: dict[str, Any]) -> None:
    answer = client.post("/v1/findings", json={"findings": list(findings)})
    assert answer.status_code == 200, answer.text


def messages_to(slack: FakeSlack, channel: str) -> list[Any]:
    return [call for call in slack.posted() if call.channel == channel]


def test_findings_reach_their_owner_grouped_threaded_and_once(
    world: tuple[TestClient, FakeSlack, Settings], engine: Engine
) -> None:
    client, slack, settings = world
    # 40 payments findings on one bucket (payments groups by resource) + 3 unowned ones for the SOC.
    post(client, *[bucket_finding(n) for n in range(40)])
    post(
        client,
        *[
            finding(
                source="inspector",
                type="Software/CVE",
                title=f"unowned {n}",
                severity="high",
                resource={"type": "AwsEc2Instance", "id": f"i-0{n}"},
            )
            for n in range(3)
        ],
    )
    deliver(engine, settings, AFTERNOON)

    payments = messages_to(slack, "C02PAYMENT")
    assert len(payments) == 1, "40 findings on one resource are one grouped message"
    assert "40" in payments[0].text
    secops = messages_to(slack, "C01SECOPS0")
    assert len(secops) == 1 and "3" in secops[0].text
    assert {c.channel for c in slack.posted()} == {"C02PAYMENT", "C01SECOPS0"}

    # The same findings again: deduplicated, nothing new to say.
    post(client, *[bucket_finding(n) for n in range(40)])
    deliver(engine, settings, AFTERNOON + timedelta(minutes=10))
    assert len(messages_to(slack, "C02PAYMENT")) == 1

    # A new finding on the same bucket later: same group, replies in the first message's thread.
    post(client, bucket_finding(99))
    deliver(engine, settings, AFTERNOON + timedelta(minutes=20))
    payments = messages_to(slack, "C02PAYMENT")
    assert len(payments) == 2
    assert payments[1].thread_ts == payments[0].ts

    routing = client.get("/v1/findings?team=payments&limit=100").json()["items"]
    assert len(routing) == 41 and {f["routed_by"] for f in routing} == {"tag:owner"}


def test_a_silence_holds_messages_until_it_ends_and_explain_says_so(
    world: tuple[TestClient, FakeSlack, Settings], engine: Engine
) -> None:
    client, slack, settings = world
    silence = client.post(
        "/v1/silences",
        json={
            "match": {"resource_id": ["arn:aws:s3:::acme-invoices"]},
            "ends_at": (AFTERNOON + timedelta(days=1)).isoformat(),
            "reason": "bucket being migrated",
        },
    )
    assert silence.status_code == 201, silence.text
    silence_id = silence.json()["id"]
    post(client, bucket_finding(1))
    deliver(engine, settings, AFTERNOON)
    assert messages_to(slack, "C02PAYMENT") == []

    finding_id = client.get("/v1/findings").json()["items"][0]["id"]
    assert client.get(f"/v1/findings/{finding_id}").json()["silenced_by"] == silence_id
    held = client.get("/v1/notifications", params={"finding_id": finding_id}).json()["items"]
    assert held and {n["status"] for n in held} == {"held"}
    assert silence_id in held[0]["held_reason"]

    assert client.delete(f"/v1/silences/{silence_id}").status_code == 200
    deliver(engine, settings, AFTERNOON + timedelta(minutes=1))
    assert len(messages_to(slack, "C02PAYMENT")) == 1


def test_quiet_hours_hold_all_but_critical_then_send_one_digest(
    world: tuple[TestClient, FakeSlack, Settings], engine: Engine
) -> None:
    client, slack, settings = world
    # payments: quiet 20:00-08:00 Europe/Paris on weekdays. Wednesday 22:00 UTC is 23:00 in Paris.
    night = datetime(2030, 1, 16, 22, 0, tzinfo=UTC)
    post(client, *[bucket_finding(n, bucket=f"acme-b{n}") for n in range(5)])  # 5 groups (by resource)
    post(client, bucket_finding(7, bucket="acme-critical", severity="critical"))
    explained = client.post(
        "/v1/routing/explain", json={"finding": bucket_finding(0, bucket="acme-b0"), "at": night.isoformat()}
    ).json()
    assert "quiet hours" in " ".join(explained["summary"]).lower()

    deliver(engine, settings, night)
    night_messages = messages_to(slack, "C02PAYMENT")
    assert len(night_messages) == 1 and "acme-critical" in str(night_messages[0].blocks)

    morning = datetime(2030, 1, 17, 7, 5, tzinfo=UTC)  # 08:05 in Paris
    deliver(engine, settings, morning)
    payments = messages_to(slack, "C02PAYMENT")
    assert len(payments) == 2, "the five held findings go out as one digest"
    digest = str(payments[1].blocks)
    assert all(f"acme-b{n}" in digest for n in range(5))
    assert Counter(n["status"] for n in client.get("/v1/notifications").json()["items"])["sent"] >= 6


def test_a_finding_shows_the_message_it_was_delivered_in(
    world: tuple[TestClient, FakeSlack, Settings], engine: Engine
) -> None:
    client, slack, settings = world
    post(client, bucket_finding(1))
    deliver(engine, settings, AFTERNOON)
    finding_id = client.get("/v1/findings").json()["items"][0]["id"]
    delivered = client.get(f"/v1/findings/{finding_id}").json()["delivered_in"]
    assert delivered == [
        {
            "channel": "payments-slack",
            "kind": "slack",
            "ref": messages_to(slack, "C02PAYMENT")[0].ts,
            "last_sent_at": delivered[0]["last_sent_at"],
        }
    ]
