"""Fixtures for the outbox and dispatcher: an emptied outbox, a team with a Slack channel on a fake Slack,
findings made directly with the models (the routing CRUD API is not needed to test delivery)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.clock import new_id
from app.db import unit_of_work
from app.models.findings import Finding
from app.models.routing import NotificationChannel, Silence, Team
from app.repositories.outbox import Intent, enqueue
from app.settings import Settings
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-delivery-test-token-7f3a9c"
SECRET_NAME = "SLACK_BOT"
OUTBOX_TABLES = ("deliveries", "notifications", "notification_groups", "silences", "channels", "teams")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


@dataclass
class Clock:
    """A frozen clock the tests move by hand."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class World:
    engine: Engine
    settings: Settings
    slack: FakeSlack
    clock: Clock
    team: str = "payments"
    channel_id: str = ""
    findings: list[str] = field(default_factory=list)

    def add_team(self, name: str, *, timezone: str = "UTC", quiet_hours: dict[str, Any] | None = None) -> str:
        now = self.clock()
        team_id = new_id()
        with unit_of_work(self.engine) as session:
            session.add(
                Team(
                    id=team_id,
                    name=name,
                    timezone=timezone,
                    quiet_hours=quiet_hours,
                    policy={},
                    created_at=now,
                    updated_at=now,
                )
            )
        return team_id

    def add_channel(
        self,
        team_id: str,
        name: str,
        target: str = "C0123ABCD",
        *,
        base_url: str | None = None,
        secret_ref: str | None = SECRET_NAME,
        rate: float | None = 1000.0,
        timeout: float = 1.0,
    ) -> str:
        options: dict[str, Any] = {"base_url": base_url or self.slack.url, "timeout_seconds": timeout}
        if rate is not None:
            options["rate_per_second"] = rate
        channel_id = new_id()
        now = self.clock()
        with unit_of_work(self.engine) as session:
            session.add(
                NotificationChannel(
                    id=channel_id,
                    name=name,
                    team_id=team_id,
                    kind="slack",
                    target=target,
                    secret_ref=secret_ref,
                    options=options,
                    created_at=now,
                    updated_at=now,
                )
            )
        return channel_id

    def add_findings(self, count: int, *, severity: float = 75.0, prefix: str = "F") -> list[str]:
        now = self.clock()
        ids = []
        with unit_of_work(self.engine) as session:
            for i in range(count):
                fid = new_id()
                ids.append(fid)
                session.add(make_finding(fid, f"{prefix}-{len(self.findings) + i:05d}.", severity, now))
        self.findings.extend(ids)
        return ids

    def enqueue(
        self,
        finding_ids: list[str],
        *,
        channel_id: str | None = None,
        group_key: str = "payments|S3",
        per_finding_groups: bool = False,
        event: str = "new",
        group_wait: float = 30.0,
        group_interval: float = 300.0,
        team: str | None = None,
    ) -> int:
        intents = [
            Intent(
                finding_id=fid,
                channel_id=channel_id or self.channel_id,
                team=team or self.team,
                event=event,
                routed_by="rule:test",
                group_key=f"finding:{fid}" if per_finding_groups else group_key,
                group_labels={"team": team or self.team},
                group_wait=group_wait,
                group_interval=group_interval,
            )
            for fid in finding_ids
        ]
        with unit_of_work(self.engine) as session:
            return enqueue(session, intents, self.clock())

    def add_silence(self, finding_id: str, ends_at: datetime, reason: str = "maintenance") -> str:
        sid = new_id()
        now = self.clock()
        with unit_of_work(self.engine) as session:
            session.add(
                Silence(
                    id=sid,
                    matchers={},
                    finding_id=finding_id,
                    starts_at=now - timedelta(minutes=1),
                    ends_at=ends_at,
                    reason=reason,
                    created_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
        return sid

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))


def make_finding(fid: str, title: str, severity: float, now: datetime, status: str = "open") -> Finding:
    label = (
        "critical" if severity >= 90 else "high" if severity >= 70 else "medium" if severity >= 40 else "low"
    )
    return Finding(
        id=fid,
        fingerprint=fid * 2,
        source="test",
        type="S3/PublicRead",
        title=title,
        severity=severity,
        severity_label=label,
        resource_type="AwsS3Bucket",
        resource_id=f"arn:aws:s3:::bucket-{fid[-6:]}",
        account_id="123456789012",
        region="eu-west-1",
        tags={},
        public=False,
        references=[],
        context={},
        content_hash=fid,
        status=status,
        score=severity,
        score_breakdown={"factors": [{"name": "public", "value": 1.5, "reason": "public bucket"}]},
        occurrences=1,
        first_seen=now,
        last_seen=now,
        created_at=now,
        updated_at=now,
        team="payments",
        routed_by="rule:test",
    )


def clear_outbox(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in OUTBOX_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM findings"))


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={"C0123ABCD": "security", "C0999ZZZZ": "ops"}) as fake:
        yield fake


@pytest.fixture
def delivery_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(f"TOCSIN_SECRET_{SECRET_NAME}", TOKEN)
    return settings.model_copy(
        update={
            "outbound_allow_hosts": ["127.0.0.1"],
            "dispatcher_embedded": False,
            "public_url": "https://tocsin.example.com",
            "delivery_send_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
def world(engine: Engine, delivery_settings: Settings, slack: FakeSlack) -> Iterator[World]:
    clear_outbox(engine)
    w = World(engine=engine, settings=delivery_settings, slack=slack, clock=Clock())
    team_id = w.add_team(w.team)
    w.channel_id = w.add_channel(team_id, "payments-slack")
    yield w
    clear_outbox(engine)
