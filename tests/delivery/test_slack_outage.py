"""Slack down for a while (connection refused, not an error answer): the outbox backs up without losing
anything or giving up, and drains when Slack comes back — each group's backlog in one message, in its
thread, after the group's earlier message (issue 8, faults)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.delivery.conftest import World
from tests.delivery.test_dispatcher import deliveries, drain, notes


def test_the_outbox_backs_up_while_slack_is_down_and_drains_in_order_when_it_returns(world: World) -> None:
    groups = ("payments|S3", "payments|IAM", "payments|EC2")
    for key in groups:
        world.enqueue(world.add_findings(2, prefix=key), group_key=key, group_wait=0, group_interval=60)
    assert drain(world).sent == 6
    roots = {call.text: call.ts for call in world.slack.posted()}
    assert len(world.slack.posted()) == 3

    port = urlsplit(world.slack.url).port
    assert port is not None
    world.slack.stop()
    backlog = []
    for wave in range(3):  # three waves of new findings while Slack is unreachable
        world.clock.advance(120)
        for key in groups:
            ids = world.add_findings(1, prefix=f"{key}-w{wave}")
            backlog.extend(ids)
            world.enqueue(ids, group_key=key, group_wait=0, group_interval=60)
        stats = drain(world)
        assert stats.sent == 0 and stats.dead == 0
    pending = [n for n in notes(world) if n.finding_id in backlog]
    assert len(pending) == 9 and {n.status for n in pending} == {"pending"}
    failed = [d for d in deliveries(world) if not d.ok]
    assert failed and all(d.retryable for d in failed)

    world.slack.start(port)
    world.clock.advance(world.settings.delivery_backoff_max_seconds + 1)
    assert drain(world).sent == 9
    assert {n.status for n in notes(world)} == {"sent"}, "nothing lost"
    after = world.slack.posted()[3:]
    assert len(after) == 3, "each group's backlog goes out as one message"
    assert {call.thread_ts for call in after} == set(roots.values()), "in the group's thread"
