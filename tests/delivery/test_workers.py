"""`tocsin worker` processes draining the outbox into the fake Slack: each notification exactly once with
three workers, and at least once when one of them is killed (SIGKILL) mid-run. PostgreSQL only: workers
coordinate through SKIP LOCKED and leases; SQLite has one writer and runs the embedded dispatcher."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.delivery.conftest import SECRET_NAME, TOKEN, World

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("several worker processes need PostgreSQL (SKIP LOCKED); SQLite runs one dispatcher")


def _prepare(world: World, count: int, channels: int = 20) -> dict[str, str]:
    """``count`` findings, one group each, over ``channels`` channels; returns title -> finding id."""
    team_id = world.add_team("load")
    channel_ids = [
        world.add_channel(team_id, f"load-{i}", rate=1000.0, timeout=10.0) for i in range(channels)
    ]
    ids = world.add_findings(count, prefix="W")
    for i, channel_id in enumerate(channel_ids):
        world.enqueue(
            ids[i::channels], channel_id=channel_id, team="load", per_finding_groups=True, group_wait=0
        )
    return {f"W-{i:05d}.": fid for i, fid in enumerate(ids)}


def _spawn(
    world: World, n: int, *extra: str, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    environment = {
        **os.environ,
        "TOCSIN_DATABASE_URL": world.settings.database_url,
        "TOCSIN_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
        f"TOCSIN_SECRET_{SECRET_NAME}": TOKEN,
        "TOCSIN_LOG_LEVEL": "WARNING",
        "TOCSIN_DB_POOL_SIZE": "4",
        **(env or {}),
    }
    command = [sys.executable, "-m", "app.cli", "worker", "--concurrency", "16", *extra]
    return [
        subprocess.Popen(command, cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]


def _delivered(world: World, titles: Sequence[str]) -> collections.Counter[str]:
    """How often the fake Slack accepted a message about each finding (the fake's call log)."""
    counts: collections.Counter[str] = collections.Counter()
    for call in world.slack.posted():
        blob = json.dumps(call.blocks)
        counts.update(title for title in _titles_in(blob) if title in titles)
    return counts


def _titles_in(blob: str) -> list[str]:
    found = []
    start = blob.find("W-")
    while start != -1:
        found.append(blob[start : start + 8])
        start = blob.find("W-", start + 1)
    return list(dict.fromkeys(found))


def _sent_count(world: World) -> int:
    return int(world.rows("SELECT count(*) FROM notifications WHERE status = 'sent'")[0][0])


def _run_and_measure(world: World, workers: int, count: int) -> float:
    titles = _prepare(world, count)
    began = time.monotonic()
    procs = _spawn(world, workers, "--once")
    outputs = [p.communicate(timeout=300)[1] for p in procs]
    elapsed = time.monotonic() - began
    assert all(p.returncode == 0 for p in procs), outputs
    counts = _delivered(world, list(titles))
    assert len(counts) == count, f"{count - len(counts)} notification(s) never delivered"
    duplicates = {t: n for t, n in counts.items() if n > 1}
    assert duplicates == {}, f"delivered more than once: {duplicates}"
    assert _sent_count(world) == count
    rate = count / elapsed
    print(
        f"\n{workers} worker(s): {count} notifications in {elapsed:.1f}s = {rate:.0f}/s ({rate / workers:.0f}/s per worker)"
    )
    for out in outputs:
        print("   ", out.strip().splitlines()[-1] if out.strip() else "(no output)")
    return rate


def test_three_workers_deliver_2000_notifications_exactly_once(world: World) -> None:
    _run_and_measure(world, 3, 2000)


def test_one_worker_throughput(world: World) -> None:
    _run_and_measure(world, 1, 1000)


def test_a_killed_worker_loses_nothing(world: World) -> None:
    count = 2000
    titles = _prepare(world, count)
    env = {"TOCSIN_DELIVERY_LEASE_SECONDS": "10", "TOCSIN_DELIVERY_SEND_TIMEOUT_SECONDS": "2"}
    procs = _spawn(world, 3, env=env)
    deadline = time.monotonic() + 60
    while len(world.slack.posted()) < 300:
        assert time.monotonic() < deadline, "workers did not start delivering"
        time.sleep(0.02)
    procs[0].send_signal(signal.SIGKILL)
    killed_at = len(world.slack.posted())
    deadline = time.monotonic() + 120
    while _sent_count(world) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    for proc in procs[1:]:
        proc.send_signal(signal.SIGTERM)  # graceful: finishes what it sends, exits 0
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs[1:]] == [0, 0], outputs[1:]
    counts = _delivered(world, list(titles))
    missing = sorted(set(titles) - set(counts))
    duplicates = {t: n for t, n in counts.items() if n > 1}
    print(
        f"\nkilled one of 3 workers after {killed_at} messages: {len(counts)} of {count} delivered, "
        f"{len(duplicates)} delivered twice (sent by the killed worker, not recorded before it died)"
    )
    assert missing == [], f"never delivered: {missing[:10]}"
    assert _sent_count(world) == count
    assert len(duplicates) <= 16 * 2 + 50, duplicates  # at most what the killed worker had in flight
