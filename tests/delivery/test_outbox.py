"""Enqueue and claim: group timers, no double-queue, disjoint claims and leases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.db import unit_of_work
from app.repositories import outbox
from tests.delivery.conftest import World


def _due(world: World) -> list[tuple[str, object]]:
    return [(r[0], r[1]) for r in world.rows("SELECT finding_id, due_at FROM notifications ORDER BY id")]


def test_new_group_waits_group_wait_and_joins_pending_company(world: World) -> None:
    first = world.add_findings(3)
    assert world.enqueue(first, group_wait=30) == 3
    world.clock.advance(10)
    later = world.add_findings(1)
    assert world.enqueue(later, group_wait=30) == 1
    groups = world.rows("SELECT id FROM notification_groups")
    assert len(groups) == 1
    dues = {str(d) for _, d in _due(world)}
    assert len(dues) == 1  # the late one goes out with the first three


def test_repeat_is_not_queued_twice(world: World) -> None:
    ids = world.add_findings(2)
    assert world.enqueue(ids) == 2
    assert world.enqueue(ids) == 0
    assert world.enqueue(ids, event="escalated") == 2


def test_after_a_send_the_next_waits_group_interval(world: World) -> None:
    ids = world.add_findings(1)
    world.enqueue(ids)
    sent_at = world.clock()
    with unit_of_work(world.engine) as session:
        session.execute(outbox.NOTIFICATIONS.update().values(status="sent", sent_at=sent_at))
        session.execute(outbox.GROUPS.update().values(last_sent_at=sent_at))
    world.clock.advance(60)
    more = world.add_findings(1)
    world.enqueue(more, group_interval=300)
    with unit_of_work(world.engine) as session:
        due = session.execute(
            select(outbox.NOTIFICATIONS.c.due_at).where(outbox.NOTIFICATIONS.c.status == "pending")
        ).scalar_one()
    assert due == sent_at + timedelta(seconds=300)


def test_claims_are_disjoint_and_leased(world: World) -> None:
    ids = world.add_findings(10)
    world.enqueue(ids, per_finding_groups=True, group_wait=0)
    now = world.clock()
    with unit_of_work(world.engine) as session:
        a = outbox.claim_due_groups(session, "a", now, 60, 6)
    with unit_of_work(world.engine) as session:
        b = outbox.claim_due_groups(session, "b", now, 60, 6)
    assert len(a) == 6 and len(b) == 4 and not set(a) & set(b)
    with unit_of_work(world.engine) as session:
        assert outbox.claim_due_groups(session, "c", now, 60, 6) == []
        retaken = outbox.claim_due_groups(session, "c", now + timedelta(seconds=61), 60, 20)
    assert sorted(retaken) == sorted(a + b)
