"""A finding's whole ticket lifecycle through the dispatcher and a fake Jira, on SQLite and PostgreSQL:
new -> ticket created once; nothing new -> nothing sent; reminder -> comment; resolved by the source ->
Done transition; regressed -> Reopen; the ticket closed in Jira -> the finding is resolved (back-sync)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.clock import new_id
from app.db import unit_of_work
from app.delivery.dispatcher import Dispatcher
from app.main import create_app
from app.models.routing import NotificationChannel
from app.settings import Settings
from tests.delivery.conftest import Clock, World, clear_outbox
from tests.fakes.jira import FakeJira
from tests.fakes.slack import FakeSlack

TOKEN = "jira-lifecycle-token-51ad0e"
USER = "tocsin@acme.example"
HOOK_SECRET = "jira-lifecycle-hook-9f0b"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(token=TOKEN, user=USER) as fake:
        yield fake


@pytest.fixture
def jira_world(
    engine: Engine, delivery_settings: Settings, jira: FakeJira, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    monkeypatch.setenv("TOCSIN_SECRET_JIRA_TOKEN", TOKEN)
    clear_outbox(engine)
    settings = delivery_settings.model_copy(update={"jira_webhook_secret": SecretStr(HOOK_SECRET)})
    world = World(engine=engine, settings=settings, slack=cast(FakeSlack, None), clock=Clock())
    team_id = world.add_team(world.team)
    world.channel_id = new_id()
    now = world.clock()
    with unit_of_work(engine) as session:
        session.add(
            NotificationChannel(
                id=world.channel_id,
                name="payments-jira",
                team_id=team_id,
                kind="jira",
                target="SEC",
                secret_ref="JIRA_TOKEN",
                options={
                    "base_url": jira.url,
                    "insecure": True,
                    "user": USER,
                    "timeout_seconds": 2,
                    "rate_per_second": 1000,
                },
                created_at=now,
                updated_at=now,
            )
        )
    yield world
    clear_outbox(engine)


def deliver(world: World) -> Any:
    dispatcher = Dispatcher(world.engine, world.settings, clock=world.clock)

    async def run() -> Any:
        try:
            return await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    return asyncio.run(run())


def set_status(world: World, finding_id: str, status: str) -> None:
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE findings SET status = :s WHERE id = :i"), {"s": status, "i": finding_id})


def step(world: World, finding_id: str, event: str) -> None:
    world.clock.advance(3600)
    world.enqueue([finding_id], per_finding_groups=True, event=event)
    world.clock.advance(60)
    deliver(world)


def test_a_ticket_follows_its_finding(jira_world: World, jira: FakeJira) -> None:
    world = jira_world
    [fid] = world.add_findings(1, severity=85.0)

    world.enqueue([fid], per_finding_groups=True, event="new")
    world.clock.advance(31)
    stats = deliver(world)
    assert stats.sent == 1, stats
    assert list(jira.issues) == ["SEC-1"]
    [ref] = world.rows("SELECT thread_ref FROM notification_groups")
    assert ref.thread_ref == "SEC-1"

    calls = len(jira.calls)
    world.clock.advance(3600)
    assert deliver(world).claimed == 0 and len(jira.calls) == calls  # nothing due: nothing sent

    step(world, fid, "reminder")
    issue = jira.issues["SEC-1"]
    assert len(issue.comments) == 1 and issue.transitions == []

    set_status(world, fid, "resolved")
    step(world, fid, "resolved")
    assert issue.transitions == ["Done"] and issue.status == "Done"

    set_status(world, fid, "open")
    step(world, fid, "regressed")
    assert issue.transitions == ["Done", "Reopen"] and issue.status == "To Do"
    assert len(issue.comments) == 2
    assert len(jira.calls_to("POST", "/issue")) == 1  # created once, all along
    failed = world.rows("SELECT detail FROM deliveries WHERE ok = :f", f=False)
    assert failed == []

    # Someone closes the ticket in Jira: Jira calls the webhook and the finding is resolved.
    jira.move("SEC-1", "Done", resolution="Fixed")
    with TestClient(create_app(world.settings, world.engine)) as client:
        answer = client.post(
            "/v1/jira/webhook", params={"secret": HOOK_SECRET}, json=jira.webhook_payload("SEC-1")
        )
    assert answer.status_code == 200 and answer.json()["changed"] == 1, answer.text
    [row] = world.rows("SELECT status FROM findings WHERE id = :i", i=fid)
    assert row.status == "resolved"
    [audit] = world.rows("SELECT actor FROM audit_log WHERE target_id = :i", i=fid)
    assert audit.actor.startswith("jira:")
