"""The email channel through the dispatcher, against an aiosmtpd inbox on 127.0.0.1: two flushes of one
group are one conversation in the inbox, and what quiet hours held goes out as one digest email."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from app.clock import new_id
from app.db import unit_of_work
from app.delivery.dispatcher import Dispatcher, RoundStats
from app.models.routing import NotificationChannel
from tests.delivery.conftest import World
from tests.integrations.channels.test_email import Server, serve


@pytest.fixture
def inbox() -> Iterator[Server]:
    yield from serve()


def drain(world: World) -> RoundStats:
    async def go() -> RoundStats:
        dispatcher = Dispatcher(world.engine, world.settings, clock=world.clock, worker_id="test")
        try:
            return await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    return asyncio.run(go())


def add_email_channel(world: World, team_id: str, name: str, port: int) -> str:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "insecure": True,
        "from_address": "tocsin@alerts.example.com",
        "timeout_seconds": 2,
        "rate_per_second": 1000,
    }
    channel_id = new_id()
    now = world.clock()
    with unit_of_work(world.engine) as session:
        session.add(
            NotificationChannel(
                id=channel_id,
                name=name,
                team_id=team_id,
                kind="email",
                target="secops@example.com",
                secret_ref=None,
                options=options,
                created_at=now,
                updated_at=now,
            )
        )
    return channel_id


def test_two_flushes_of_one_group_thread_in_the_inbox(world: World, inbox: Server) -> None:
    team_id = world.add_team("mailers")
    channel_id = add_email_channel(world, team_id, "mailers-email", inbox.port)
    world.enqueue(
        world.add_findings(2), channel_id=channel_id, team="mailers", group_key="mailers|S3", group_wait=0
    )
    assert drain(world).sent == 2
    world.clock.advance(301)  # past group_interval
    world.enqueue(
        world.add_findings(1), channel_id=channel_id, team="mailers", group_key="mailers|S3", group_wait=0
    )
    assert drain(world).sent == 1
    [(_, first), (_, second)] = inbox.inbox.messages
    assert first["Subject"] == "[Tocsin][HIGH] 2 findings — mailers"
    root = first["Message-ID"]
    assert root.startswith("<tocsin-") and first["In-Reply-To"] is None
    assert second["Message-ID"] != root
    assert second["In-Reply-To"] == root and second["References"] == root
    [stored] = world.rows("SELECT thread_ref FROM notification_groups WHERE group_key = 'mailers|S3'")
    assert stored.thread_ref == root


def test_a_quiet_hours_digest_is_one_email(world: World, inbox: Server) -> None:
    team_id = world.add_team("night", timezone="Europe/Paris", quiet_hours={"start": "22:00", "end": "07:00"})
    channel_id = add_email_channel(world, team_id, "night-email", inbox.port)
    world.clock.now = world.clock.now.replace(hour=23)  # 00:00 in Paris
    highs = world.add_findings(3, severity=75)
    mediums = world.add_findings(2, severity=50, prefix="MED")
    for i, fid in enumerate(highs + mediums):
        world.enqueue([fid], channel_id=channel_id, team="night", group_key=f"night|type{i}", group_wait=0)
    assert drain(world).held == 5 and inbox.inbox.messages == []
    world.clock.now = world.clock.now.replace(hour=6) + timedelta(days=1)  # 07:00 in Paris
    stats = drain(world)
    assert (stats.messages, stats.sent) == (1, 5)
    message = inbox.inbox.only()
    assert message["Subject"] == "[Tocsin][HIGH] Digest: 5 findings held for night"
    text = message.get_body(("plain",))
    assert text is not None
    body = str(text.get_content())
    assert body.index("== HIGH (3) ==") < body.index("== MEDIUM (2) ==")
    assert all(f"F-0000{i}." in body for i in range(3)) and "MED-00003." in body
