"""The outbox dispatcher: claim due groups, decide, send one message per group, record every attempt.

Used by ``tocsin worker`` (any number of processes) and embedded in ``tocsin serve``. A round:

1. release held notifications whose time came (back to pending; re-held below if they still should be);
2. claim due groups with a lease (``SKIP LOCKED`` on PostgreSQL), load them in a few queries;
3. per group, at send time: drop what is no longer relevant (finding closed), hold what a silence covers
   (until it ends) and what quiet hours hold (moved into the team's digest group, sent as one digest when
   the window ends); send the rest as ONE message, paced per channel, with a timeout;
4. record the attempt (``deliveries``) and its outcome (groups finishing together share one short
   transaction): sent, retry later (exponential backoff with full jitter, or ``Retry-After``: a 429 never
   kills a message), or dead.

Delivery is at least once: a worker killed between a send and its record leaves the group leased, and
another worker sends it again once the lease has passed. Time comes from an injectable clock, so tests
move a frozen clock past ``group_wait`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine

from app.clock import new_id, utcnow
from app.contracts import Channel, DeliveryResult, OutboundPolicy
from app.db import read_only, run_transaction, unit_of_work
from app.delivery import outbound
from app.delivery.backoff import retry_delay
from app.delivery.batching import Pacer, WriteBatcher, channel_rate
from app.delivery.messages import build_message
from app.delivery.metrics import (
    DELIVERY_LATENCY,
    MESSAGES,
    NOTIFICATIONS_DEAD,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_SENT,
)
from app.delivery.secrets import SecretMissing, resolve_secret
from app.delivery.send_plan import SendPlan, plan_group
from app.pipeline.route import RoutingTable
from app.repositories import outbox, outbox_sends
from app.repositories.outbox_sends import ClaimedGroup
from app.settings import Settings
from integrations.channels import build_channel

log = logging.getLogger("tocsin.delivery")

DB_ATTEMPTS = 4
LEASE_MARGIN_SECONDS = 5.0

REFUSAL_CACHE_SECONDS = 30.0

ChannelFactory = Callable[[str, str, Mapping[str, Any], SecretStr | None, OutboundPolicy], Channel]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


@dataclass
class RoundStats:
    """What rounds did, in notifications (``messages`` counts send attempts)."""

    claimed: int = 0
    messages: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0
    dropped: int = 0
    released: int = 0
    errors: int = 0

    def add(self, other: RoundStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        return (
            f"{self.messages} message(s): {self.sent} notification(s) sent, {self.retried} to retry, "
            f"{self.dead} dead, {self.held} held, {self.dropped} dropped"
        )


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int | None = None,
        channel_factory: ChannelFactory = build_channel,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.concurrency = concurrency or settings.delivery_concurrency
        self._factory = channel_factory
        self._channels: dict[str, tuple[tuple[Any, ...], Channel]] = {}
        self._pacer = Pacer()
        self._slots = asyncio.Semaphore(self.concurrency)  # send slots of the current round
        self._writes: WriteBatcher | None = None  # created in the running loop
        self._refusals: dict[str, tuple[float, str | None]] = {}
        self._stopping = asyncio.Event()
        self.totals = RoundStats()

    # -- loops ---------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Graceful stop: groups already being sent finish and are recorded; the rest are given back."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run_forever(self) -> None:
        """Rounds until ``request_stop``; idles ``delivery_poll_seconds`` when nothing is due."""
        while not self.stopping:
            try:
                stats = await self.run_once()
            except Exception as exc:  # database down, not migrated yet: one line, then try again
                log.warning("dispatcher round failed (%s: %s)", type(exc).__name__, _first_line(exc))
                stats = RoundStats(errors=1)
            if stats.claimed == 0 or stats.errors:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.delivery_poll_seconds)

    async def drain(self) -> RoundStats:
        """Rounds until nothing is due (``tocsin worker --once``, tests)."""
        total = RoundStats()
        while not self.stopping:
            stats = await self.run_once()
            total.add(stats)
            if stats.claimed == 0:
                break
        return total

    async def aclose(self) -> None:
        channels, self._channels = self._channels, {}
        for _, channel in channels.values():
            try:
                await channel.aclose()
            except Exception as exc:  # closing must not hide the real shutdown
                log.warning("closing a %s channel failed: %s", channel.kind, type(exc).__name__)

    # -- one round -----------------------------------------------------------------------------------

    async def run_once(self) -> RoundStats:
        """Release due held notifications, claim due groups, send and record them."""
        now = self.clock()
        claimed_at = time.monotonic()
        group_ids = await asyncio.to_thread(self._claim, now)
        if not group_ids:
            return RoundStats()
        groups, findings, table = await asyncio.to_thread(self._load, group_ids, now)
        stats = RoundStats(claimed=len(group_ids))
        semaphore = self._slots = asyncio.Semaphore(self.concurrency)

        async def one(claimed: ClaimedGroup) -> RoundStats:
            async with semaphore:
                try:
                    return await self._process(claimed, findings, table, claimed_at)
                except Exception:
                    log.exception("group %s failed in the dispatcher", claimed.group["id"])
                    return RoundStats(errors=1)

        for result in await asyncio.gather(*(one(g) for g in groups)):
            stats.add(result)
        self.totals.add(stats)
        return stats

    def _claim(self, now: datetime) -> list[str]:
        with unit_of_work(read_only(self.engine)) as session:
            if not outbox.anything_due(session, now):
                return []

        def work(session: Any) -> list[str]:
            released = outbox.release_held(session, now)
            if released:
                log.info("released %d held notification(s)", released)
            return outbox.claim_due_groups(
                session,
                self.worker_id,
                now,
                self.settings.delivery_lease_seconds,
                self.settings.delivery_batch_groups,
            )

        return run_transaction(self.engine, work, DB_ATTEMPTS)

    def _load(
        self, group_ids: list[str], now: datetime
    ) -> tuple[list[ClaimedGroup], dict[str, dict[str, Any]], RoutingTable]:
        with unit_of_work(read_only(self.engine)) as session:
            groups, findings = outbox_sends.load_claimed(session, group_ids)
            teams, silences = outbox_sends.teams_and_active_silences(session, now)
        return groups, findings, RoutingTable.from_rows(teams, [], [], silences)

    # -- one group -----------------------------------------------------------------------------------

    async def _process(
        self,
        claimed: ClaimedGroup,
        findings: Mapping[str, Mapping[str, Any]],
        table: RoutingTable,
        claimed_at: float,
    ) -> RoundStats:
        group = claimed.group
        now = self.clock()
        plan = plan_group(claimed, findings, table, now)
        stats = RoundStats(held=len(plan.holds), dropped=len(plan.drops))
        if not plan.send or self.stopping:
            await self._write(lambda s: self._decide_and_release(s, group, plan, now))
            stats.released = len(plan.send)
            return stats
        channel_row = claimed.channel
        assert channel_row is not None  # plan_group drops everything of a missing channel
        rate = channel_rate(channel_row, self.settings.delivery_default_rate_per_second)
        wait = self._pacer.reserve(channel_row["id"], rate)
        lease_left = claimed_at + self.settings.delivery_lease_seconds - time.monotonic() - wait
        if lease_left < self.settings.delivery_send_timeout_seconds + LEASE_MARGIN_SECONDS:
            # The channel's pace would outlast our lease: give the group back for a later round.
            self._pacer.cancel(channel_row["id"], rate)
            await self._write(lambda s: self._decide_and_release(s, group, plan, now))
            stats.released = len(plan.send)
            return stats
        if wait > 0:
            # Waiting for the channel's pace must not hold a send slot: other channels' groups go on.
            self._slots.release()
            try:
                await asyncio.sleep(wait)
            finally:
                await self._slots.acquire()
        message = build_message(
            message_id=new_id(),
            team=group["team"],
            channel_name=channel_row["name"],
            group_key=group["group_key"],
            group_labels=group.get("labels") or {},
            thread_ref=group.get("thread_ref"),
            digest=str(group["group_key"]).startswith(outbox.DIGEST_PREFIX),
            items=[(note["event"], findings[note["finding_id"]]) for note in plan.send],
            public_url=self.settings.public_url,
            still_open_in_group=claimed.open_findings,
        )
        started = self.clock()
        began = time.monotonic()
        result = await self._send(channel_row, message)
        elapsed = time.monotonic() - began
        kind = str(channel_row["kind"])
        DELIVERY_LATENCY.labels(kind).observe(elapsed)
        outcome = await self._write(
            lambda s: self._record(s, claimed, plan, message.id, message.digest, result, started)
        )
        stats.messages = 1
        stats.sent, stats.retried, stats.dead = outcome
        MESSAGES.labels(kind, "ok" if result.ok else "retry" if outcome[1] else "dead").inc()
        NOTIFICATIONS_SENT.labels(kind).inc(outcome[0])
        NOTIFICATIONS_FAILED.labels(kind).inc(outcome[1])
        NOTIFICATIONS_DEAD.labels(kind).inc(outcome[2])
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "delivery %s",
            "sent" if result.ok else "failed",
            extra={
                "group_id": group["id"],
                "channel": channel_row["name"],
                "kind": kind,
                "notifications": len(plan.send),
                "findings": message.total,
                "status_code": result.status_code,
                "retryable": result.retryable,
                "detail": result.detail,
                "seconds": round(elapsed, 3),
                "worker": self.worker_id,
            },
        )
        return stats

    async def _write(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(session)`` in a transaction; writes of groups finishing together share one."""
        if self._writes is None:
            self._writes = WriteBatcher(self.engine, DB_ATTEMPTS)
        return await self._writes.submit(work)

    async def _refusal(self, endpoint: str) -> str | None:
        """The outbound pre-check, remembered for a short while per endpoint (a DNS lookup per message
        was a measurable share of a worker's time). Channels on guarded clients re-check at connect."""
        now = time.monotonic()
        cached = self._refusals.get(endpoint)
        if cached is not None and cached[0] > now:
            return cached[1]
        refused = await asyncio.to_thread(outbound.refusal, endpoint, self.settings.outbound_allow_hosts)
        self._refusals[endpoint] = (now + REFUSAL_CACHE_SECONDS, refused)
        return refused

    def _decide_and_release(self, session: Any, group: dict[str, Any], plan: SendPlan, now: datetime) -> None:
        outbox_sends.apply_decisions(session, group, plan.holds, plan.drops, now)
        outbox_sends.release(session, group["id"], self.worker_id)

    async def _send(self, channel_row: Mapping[str, Any], message: Any) -> DeliveryResult:
        """Secret, guard, channel, timeout: every way a send can fail becomes a DeliveryResult."""
        secret: SecretStr | None = None
        if channel_row.get("secret_ref"):
            try:
                secret = resolve_secret(str(channel_row["secret_ref"]), self.settings.secrets_dir)
            except SecretMissing as exc:
                return DeliveryResult(ok=False, retryable=False, detail=str(exc))
        try:
            channel = self._channel(channel_row, secret)
        except ValueError as exc:
            return DeliveryResult(ok=False, retryable=False, detail=f"invalid channel configuration: {exc}")
        refused = await self._refusal(channel.endpoint)
        if refused is not None:
            return DeliveryResult(ok=False, retryable=outbound.is_resolution_failure(refused), detail=refused)
        timeout = self.settings.delivery_send_timeout_seconds
        try:
            result = await asyncio.wait_for(channel.send(message), timeout)
        except TimeoutError:
            result = DeliveryResult(
                ok=False, retryable=True, detail=f"no answer within {timeout:g}s (timeout)"
            )
        except Exception as exc:  # a channel must not raise, but one bug must not stop delivery
            result = DeliveryResult(ok=False, retryable=True, detail=f"channel raised {type(exc).__name__}")
        if secret is not None and result.detail:
            value = secret.get_secret_value()
            if value and value in result.detail:
                result = result.model_copy(update={"detail": result.detail.replace(value, "***")})
        return result

    def _channel(self, row: Mapping[str, Any], secret: SecretStr | None) -> Channel:
        """A cached channel per channel row; rebuilt when its config or its secret changes."""
        options = dict(row.get("options") or {})  # build_channel sets the delivery-level ones aside
        key = (
            row["kind"],
            row["target"],
            repr(sorted(options.items())),
            hash(secret.get_secret_value()) if secret is not None else None,
        )
        cached = self._channels.get(row["id"])
        if cached is not None and cached[0] == key:
            return cached[1]
        policy = OutboundPolicy(frozenset(h.lower() for h in self.settings.outbound_allow_hosts))
        channel = self._factory(str(row["kind"]), str(row["target"]), options, secret, policy)
        if cached is not None:
            asyncio.get_running_loop().create_task(cached[1].aclose())
        self._channels[row["id"]] = (key, channel)
        return channel

    def _record(
        self,
        session: Any,
        claimed: ClaimedGroup,
        plan: SendPlan,
        message_id: str,
        digest: bool,
        result: DeliveryResult,
        started: datetime,
    ) -> tuple[int, int, int]:
        """(sent, to retry, dead) notifications, written with the attempt's log row."""
        group = claimed.group
        now = self.clock()
        ids = [note["id"] for note in plan.send]
        outbox_sends.apply_decisions(session, group, plan.holds, plan.drops, now)
        delivery_id = outbox_sends.record_delivery(
            session,
            {
                "message_id": message_id,
                "group_id": group["id"],
                "channel_id": group["channel_id"],
                "worker": self.worker_id,
                "started_at": started,
                "finished_at": now,
                "ok": result.ok,
                "retryable": result.retryable,
                "status_code": result.status_code,
                "detail": result.detail,
                "notification_ids": ids,
                "finding_count": len({note["finding_id"] for note in plan.send}),
                "digest": digest,
                "thread_ref": result.thread_ref or group.get("thread_ref"),
                "extra": {"retry_after": result.retry_after_seconds} if result.retry_after_seconds else None,
            },
        )
        if result.ok:
            next_due = now + timedelta(seconds=float(group["group_interval"]))
            outbox_sends.mark_sent(session, group, ids, delivery_id, result.thread_ref, now, next_due)
            return len(ids), 0, 0
        error = result.detail or "failed"
        if result.status_code is not None:
            error = f"{error} [HTTP {result.status_code}]" if str(result.status_code) not in error else error
        first_failed = group.get("first_failed_at") or now
        if not result.retryable:
            outbox_sends.mark_failed(session, group, [], ids, error, now, now, None)
            return 0, 0, len(ids)
        rate_limited = result.status_code == 429 or result.retry_after_seconds is not None
        too_old = now - first_failed >= timedelta(seconds=self.settings.delivery_max_age)
        dead = [
            note["id"]
            for note in plan.send
            if not rate_limited and (too_old or note["attempts"] + 1 >= self.settings.delivery_max_attempts)
        ]
        retry = [i for i in ids if i not in set(dead)]
        delay = retry_delay(
            int(group["attempts"]) + 1,
            self.settings.delivery_backoff_base_seconds,
            self.settings.delivery_backoff_max_seconds,
            result.retry_after_seconds,
        )
        outbox_sends.mark_failed(
            session, group, retry, dead, error, now, now + timedelta(seconds=delay), first_failed
        )
        return 0, len(retry), len(dead)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


class EmbeddedDispatcher:
    """The dispatcher inside ``tocsin serve`` (``TOCSIN_DISPATCHER_EMBEDDED``, on by default), stopped
    gracefully with the service: the groups being sent are finished and recorded, the rest given back."""

    def __init__(self, dispatcher: Dispatcher, task: asyncio.Task[None]) -> None:
        self.dispatcher = dispatcher
        self._task = task

    @classmethod
    def start(cls, engine: Engine, settings: Settings) -> EmbeddedDispatcher | None:
        if not settings.dispatcher_embedded:
            return None
        dispatcher = Dispatcher(engine, settings)
        log.info("embedded dispatcher started", extra={"worker": dispatcher.worker_id})
        return cls(dispatcher, asyncio.create_task(dispatcher.run_forever()))

    async def stop(self, timeout: float = 30.0) -> None:
        self.dispatcher.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            await self.dispatcher.aclose()
