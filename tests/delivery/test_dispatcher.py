"""The dispatcher against the fake Slack Web API, through slack-sdk's real client, with a frozen clock."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from app.db import unit_of_work
from app.delivery.dispatcher import Dispatcher, RoundStats
from app.models.notifications import Delivery, Notification
from app.models.routing import Silence
from app.repositories import outbox
from app.settings import Settings
from tests.delivery.conftest import SECRET_NAME, TOKEN, World


def drain(world: World, settings: Settings | None = None) -> RoundStats:
    async def go() -> RoundStats:
        dispatcher = Dispatcher(world.engine, settings or world.settings, clock=world.clock, worker_id="test")
        try:
            return await dispatcher.drain()
        finally:
            await dispatcher.aclose()

    return asyncio.run(go())


def notes(world: World) -> list[Notification]:
    with unit_of_work(world.engine) as session:
        return list(session.execute(select(Notification).order_by(Notification.id)).scalars())  # type: ignore[arg-type]


def deliveries(world: World) -> list[Delivery]:
    with unit_of_work(world.engine) as session:
        return list(session.execute(select(Delivery).order_by(Delivery.id)).scalars())  # type: ignore[arg-type]


def statuses(world: World) -> list[str]:
    return sorted({n.status for n in notes(world)})


def test_a_group_of_findings_is_one_message_after_group_wait(world: World) -> None:
    ids = world.add_findings(12)
    world.enqueue(ids, group_wait=30)
    assert drain(world).messages == 0  # group_wait not over
    world.clock.advance(31)
    stats = drain(world)
    assert (stats.messages, stats.sent) == (1, 12)
    posted = world.slack.posted()
    assert len(posted) == 1 and posted[0].channel == "C0123ABCD" and posted[0].thread_ts is None
    assert posted[0].token == TOKEN
    assert all(n.status == "sent" and n.sent_at == world.clock() for n in notes(world))
    [log_row] = deliveries(world)
    assert (
        log_row.ok
        and log_row.finding_count == 12
        and sorted(log_row.notification_ids) == sorted(n.id for n in notes(world))
    )
    assert "https://tocsin.example.com/v1/findings/" in json.dumps(posted[0].blocks)


def test_the_next_flush_of_a_group_replies_in_its_thread(world: World) -> None:
    world.enqueue(world.add_findings(2), group_wait=0)
    drain(world)
    first = world.slack.posted()[0]
    world.clock.advance(60)
    world.enqueue(world.add_findings(1), group_wait=0, group_interval=300)
    assert drain(world).messages == 0  # group_interval since the last message not over
    world.clock.advance(241)
    assert drain(world).sent == 1
    second = world.slack.posted()[1]
    assert second.thread_ts == first.ts
    assert deliveries(world)[-1].thread_ref == first.ts


def test_rate_limited_429_is_retried_after_retry_after_and_never_dropped(world: World) -> None:
    world.enqueue(world.add_findings(3), group_wait=0)
    world.slack.fail_next("ratelimited", times=3, retry_after=7)
    settings = world.settings.model_copy(update={"delivery_max_attempts": 1})
    for _ in range(3):
        stats = drain(world, settings)
        assert (stats.retried, stats.dead) == (3, 0)
        pending = notes(world)
        assert all(n.status == "pending" and "ratelimited" in (n.last_error or "") for n in pending)
        assert all(7 <= (n.due_at - world.clock()).total_seconds() <= 8 for n in pending)
        assert drain(world, settings).messages == 0  # not before Retry-After
        world.clock.advance(8)
    assert drain(world, settings).sent == 3
    log_rows = deliveries(world)
    assert [d.status_code for d in log_rows] == [429, 429, 429, 200]
    assert [d.retryable for d in log_rows[:3]] == [True] * 3


def test_server_error_backs_off_then_succeeds(world: World) -> None:
    world.enqueue(world.add_findings(2), group_wait=0)
    world.slack.fail_next("server_error", times=2)
    drain(world)
    first_retry = max(n.due_at for n in notes(world))
    assert first_retry <= world.clock() + timedelta(seconds=world.settings.delivery_backoff_base_seconds)
    assert all(n.attempts == 1 and n.status == "pending" for n in notes(world))
    world.clock.advance(world.settings.delivery_backoff_base_seconds + 0.01)
    drain(world)
    assert all(n.attempts == 2 for n in notes(world))
    world.clock.advance(2 * world.settings.delivery_backoff_base_seconds + 0.01)
    assert drain(world).sent == 2
    assert statuses(world) == ["sent"]
    assert [d.ok for d in deliveries(world)] == [False, False, True]
    assert deliveries(world)[0].status_code == 500


def test_too_many_failures_make_it_dead(world: World) -> None:
    world.enqueue(world.add_findings(1), group_wait=0)
    world.slack.fail_next("server_error", times=10)
    settings = world.settings.model_copy(update={"delivery_max_attempts": 3})
    for _ in range(3):
        drain(world, settings)
        world.clock.advance(3600)
    [note] = notes(world)
    assert note.status == "dead" and note.attempts == 3 and "internal_error" in (note.last_error or "")


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found"])
def test_final_slack_errors_are_dead_at_once_with_the_error(world: World, error: str) -> None:
    world.enqueue(world.add_findings(2), group_wait=0)
    world.slack.fail_next(error)
    stats = drain(world)
    assert (stats.dead, stats.retried) == (2, 0)
    assert all(n.status == "dead" and error in (n.last_error or "") for n in notes(world))
    [log_row] = deliveries(world)
    assert not log_row.ok and not log_row.retryable and error in (log_row.detail or "")


def test_a_hang_past_the_timeout_is_retryable(world: World) -> None:
    world.enqueue(world.add_findings(1), group_wait=0)
    world.slack.hang_next(3.0)  # the channel's timeout is 1 s
    stats = drain(world)
    assert stats.retried == 1
    [note] = notes(world)
    assert note.status == "pending" and "timed out" in (note.last_error or "")
    world.clock.advance(3600)
    assert drain(world).sent == 1


def test_a_silence_holds_and_its_end_releases(world: World) -> None:
    [silenced, other] = world.add_findings(2)
    ends = world.clock() + timedelta(hours=2)
    sid = world.add_silence(silenced, ends, reason="patch window")
    world.enqueue([silenced, other], group_wait=0)
    stats = drain(world)
    assert (stats.sent, stats.held) == (1, 1)
    held = next(n for n in notes(world) if n.finding_id == silenced)
    assert held.status == "held" and held.silence_id == sid and held.due_at == ends
    assert held.held_reason == f"silenced by {sid}: patch window until {ends.isoformat()}"
    world.clock.advance(3600)
    assert drain(world).messages == 0
    world.clock.advance(3601)
    assert drain(world).sent == 1
    assert statuses(world) == ["sent"]


def test_expiring_a_silence_early_releases_at_once(world: World) -> None:
    [fid] = world.add_findings(1)
    sid = world.add_silence(fid, world.clock() + timedelta(days=1))
    world.enqueue([fid], group_wait=0)
    drain(world)
    assert statuses(world) == ["held"]
    world.clock.advance(60)
    with unit_of_work(world.engine) as session:  # what DELETE /v1/silences/{id} does
        session.execute(update(Silence).values(ends_at=world.clock()))
        assert outbox.release_silence(session, sid, world.clock()) == 1
    assert drain(world).sent == 1


def test_closed_findings_are_dropped_but_resolved_events_go_out(world: World) -> None:
    [a, b] = world.add_findings(2)
    world.enqueue([a, b], group_wait=0)
    world.enqueue([b], event="resolved", group_wait=0)
    with unit_of_work(world.engine) as session:
        session.execute(text("UPDATE findings SET status = 'resolved' WHERE id = :b"), {"b": b})
    stats = drain(world)
    assert (stats.sent, stats.dropped) == (2, 1)
    dropped = [n for n in notes(world) if n.status == "dropped"]
    assert dropped[0].finding_id == b and dropped[0].event == "new"
    assert "resolved" in (dropped[0].held_reason or "")


def test_quiet_hours_hold_below_critical_and_send_one_digest(world: World) -> None:
    # 22:00-07:00 in Paris (UTC+1 in March): now is 12:00 UTC, so move the clock into the window.
    team_id = world.add_team("night", timezone="Europe/Paris", quiet_hours={"start": "22:00", "end": "07:00"})
    channel_id = world.add_channel(team_id, "night-slack", target="C0999ZZZZ")
    world.clock.now = world.clock.now.replace(hour=23)  # 00:00 in Paris
    highs = world.add_findings(4, severity=75)
    critical = world.add_findings(1, severity=95, prefix="CRIT")
    for i, fid in enumerate(highs):
        world.enqueue([fid], channel_id=channel_id, team="night", group_key=f"night|type{i}", group_wait=0)
    world.enqueue(critical, channel_id=channel_id, team="night", group_key="night|crit", group_wait=0)
    stats = drain(world)
    assert (stats.sent, stats.held) == (1, 4)  # the critical one goes out at once
    held = [n for n in notes(world) if n.status == "held"]
    window_end = world.clock.now.replace(hour=6) + timedelta(days=1)  # 07:00 Paris = 06:00 UTC
    assert all(n.due_at == window_end and "quiet hours" in (n.held_reason or "") for n in held)
    world.clock.now = window_end - timedelta(minutes=1)
    assert drain(world).messages == 0
    world.clock.now = window_end
    stats = drain(world)
    assert (stats.messages, stats.sent) == (1, 4)
    digest = world.slack.posted()[-1]
    assert digest.channel == "C0999ZZZZ" and "quiet hours" in (digest.text or "")
    assert deliveries(world)[-1].digest and deliveries(world)[-1].finding_count == 4


def test_the_outbound_guard_refuses_private_addresses(world: World) -> None:
    team_id = world.add_team("guarded")
    private = world.add_channel(team_id, "private", base_url="http://10.20.30.40/api/")
    world.enqueue(world.add_findings(1), channel_id=private, team="guarded", group_wait=0)
    loopback = world.add_channel(team_id, "loopback", base_url=world.slack.url)
    world.enqueue(world.add_findings(1), channel_id=loopback, team="guarded", group_wait=0)
    settings = world.settings.model_copy(update={"outbound_allow_hosts": []})
    stats = drain(world, settings)
    assert stats.dead == 2 and world.slack.calls == []
    details = [d.detail or "" for d in deliveries(world)]
    assert all("refused" in d and "TOCSIN_OUTBOUND_ALLOW_HOSTS" in d for d in details)
    assert any("10.20.30.40" in d for d in details) and any("127.0.0.1" in d for d in details)


def test_secret_from_a_file_and_never_in_the_log(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(f"TOCSIN_SECRET_{SECRET_NAME}")
    settings = world.settings.model_copy(update={"secrets_dir": tmp_path})
    world.enqueue(world.add_findings(1), group_wait=0)
    caplog.set_level(logging.DEBUG)
    stats = drain(world, settings)
    assert stats.dead == 1
    assert f"TOCSIN_SECRET_{SECRET_NAME}" in (deliveries(world)[0].detail or "")
    (tmp_path / SECRET_NAME).write_text(TOKEN + "\n")
    with unit_of_work(world.engine) as session:
        assert outbox.requeue_dead(session, notes(world)[0].id, world.clock())
    assert drain(world, settings).sent == 1
    assert world.slack.posted()[0].token == TOKEN
    world.enqueue(world.add_findings(1, prefix="G"), group_key="other", group_wait=0)
    world.slack.fail_next("invalid_auth")
    drain(world, settings)
    everything: list[Any] = [d.detail for d in deliveries(world)] + [n.last_error for n in notes(world)]
    assert TOKEN not in repr(everything)
    assert TOKEN not in caplog.text and "delivery" in caplog.text
