"""Where a worker's time goes, per message: ``python -m bench.delivery_stages [--concurrency N] [--findings N]``.

Sets up what ``bench.delivery``'s per-finding scenario does (scratch database, API, 20 teams on the fake
Slack, findings posted and due; one message per finding), then drains the outbox with the service's own
``Dispatcher`` in this process, with timers around its steps: claim (the lease transaction), load (the
claimed groups, findings, teams, silences), build_message, the Slack channel's render (Block Kit) and its
HTTP call (slack-sdk + aiohttp), and the record transaction (``deliveries`` row, notifications sent, group
timers). Wall time is per call, so with ``--concurrency`` above 1 the steps overlap and add up to more
than the elapsed time; ``--concurrency 1`` gives the serial cost of one message. CPU time of this process
(the fake Slack included) and the round trips per message (psycopg statements, counted) are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import time
from collections.abc import Callable
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import BenchConfig, progress
from bench.delivery import (
    SLACK_TOKEN,
    ApiService,
    DeliveryConfig,
    Scenario,
    Stage,
    _delivery_env,
    _outbox_counts,
    channel_target,
    make_findings,
    start_fake_slack,
    team_name,
)
from bench.load import batch_bodies, post_batches
from bench.server import drop_database, recreate_database


class Timers:
    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()

    def wrap_sync(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - began
                self.calls[label] += 1

        setattr(owner, name, timed)

    def wrap_async(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - began
                self.calls[label] += 1

        setattr(owner, name, timed)


def _count_statements(counter: collections.Counter[str]) -> None:
    """Count what psycopg sends: statements (Cursor.execute) and BEGIN/COMMIT/ROLLBACK commands."""
    import psycopg

    execute = psycopg.Cursor.execute

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counter["statements"] += 1
        return execute(self, query, *args, **kwargs)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    for name in ("commit", "rollback"):
        original = getattr(psycopg.Connection, name)

        def counted(self: Any, _original: Any = original, _name: str = name) -> Any:
            counter[_name] += 1
            return _original(self)

        setattr(psycopg.Connection, name, counted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_stages", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--findings", type=int, default=1000)
    args = parser.parse_args(argv)
    cfg = BenchConfig.from_env()
    dcfg = DeliveryConfig.from_bench(cfg)
    os.environ.update(_delivery_env(cfg.bench_url))
    os.environ["TOCSIN_SECRET_BENCH_SLACK"] = SLACK_TOKEN

    from app.db import create_db_engine
    from app.delivery import dispatcher as dispatcher_module
    from app.delivery.dispatcher import Dispatcher
    from app.settings import load_settings
    from integrations.channels import slack as slack_channel
    from integrations.channels import slack_blocks

    timers = Timers()
    statements: collections.Counter[str] = collections.Counter()
    timers.wrap_sync(Dispatcher, "_claim", "claim (transaction)")
    timers.wrap_sync(Dispatcher, "_load", "load claimed groups")
    timers.wrap_sync(dispatcher_module, "build_message", "build_message")
    timers.wrap_sync(dispatcher_module, "plan_group", "plan_group")
    timers.wrap_sync(slack_blocks, "render", "slack render (Block Kit)")
    timers.wrap_async(slack_channel.SlackChannel, "send", "slack send (render + HTTP)")
    timers.wrap_sync(Dispatcher, "_record", "record (statements)")
    timers.wrap_async(Dispatcher, "_write", "record (to_thread + transaction)")
    timers.wrap_async(Dispatcher, "_process", "one group (all of it)")

    sc = Scenario("per-finding", 1, args.findings, ("finding",), 1000.0, False)
    recreate_database(cfg.admin_url, cfg.bench_url)
    channels = {channel_target(i): f"{team_name(i)}-alerts" for i in range(dcfg.teams)}
    try:
        with start_fake_slack(channels) as slack, ApiService(cfg.bench_url, 1) as api:
            stage = Stage(cfg, dcfg, api, slack)
            stage.prepare(sc)
            post_batches(api, batch_bodies(make_findings(sc.findings, dcfg.teams), 500), clients=2)
            expected = sum(_outbox_counts(cfg.bench_url).values())
            time.sleep(dcfg.group_wait + 0.2)
            settings = load_settings()
            engine = create_db_engine(settings)
            dispatcher = Dispatcher(engine, settings, concurrency=args.concurrency)
            _count_statements(statements)
            me = psutil.Process()
            cpu0 = sum(me.cpu_times()[:2])
            progress(f"draining {expected:,} notifications in-process, concurrency {args.concurrency}")
            began = time.perf_counter()

            async def drain() -> Any:
                try:
                    return await dispatcher.drain()
                finally:
                    await dispatcher.aclose()

            totals = asyncio.run(drain())
            elapsed = time.perf_counter() - began
            cpu = sum(me.cpu_times()[:2]) - cpu0
            engine.dispose()
            messages = len(slack.posted())
    finally:
        drop_database(cfg.admin_url, cfg.bench_url)
    print(
        f"\n{totals.sent:,} notifications, {messages:,} messages in {elapsed:.2f} s = "
        f"{totals.sent / elapsed:,.0f}/s; CPU of this process (dispatcher + fake Slack) "
        f"{cpu / messages * 1e3:.2f} ms/message"
    )
    print(
        f"psycopg per message: {statements['statements'] / messages:.2f} statements, "
        f"{statements['commit'] / messages:.2f} commits, {statements['rollback'] / messages:.2f} rollbacks "
        "(+ one BEGIN per transaction and one pre-ping per pool checkout, not counted)"
    )
    print(f"\n{'step':40} {'calls':>7} {'ms/call':>9} {'ms/message':>11}")
    for label, seconds in sorted(timers.seconds.items(), key=lambda kv: -kv[1]):
        calls = timers.calls[label]
        print(f"{label:40} {calls:7,} {seconds / calls * 1e3:9.3f} {seconds / messages * 1e3:11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
