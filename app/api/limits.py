"""Abuse limits: request rates and concurrent ingests per token, and the request timeout.

The counters live in this process, not in the database: a shared counter would cost a write (and a row
lock on the busiest token) per request, on the very path the limits protect, and SQLite would queue every
read behind it. So every limit is *per API replica*: with N replicas a token may make up to N times the
configured rate. They are brakes on a runaway or stolen token, not quotas; nothing else depends on them.

Keys are token ids, known only after authentication, so a flood of made-up tokens creates no state here
(each costs one indexed lookup and a 401).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import Principal
from app.errors import AppError
from app.settings import Settings

log = logging.getLogger("tocsin.limits")

# Buckets of tokens idle long enough to be full again are dropped past this many (memory stays bounded).
_PRUNE_ABOVE = 10_000


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests at once, refilled at ``per_minute / 60`` a second."""

    def __init__(
        self, per_minute: int, what: str, variable: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.what = what
        self.variable = variable
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 when allowed, else the seconds until one is."""
        if self.capacity <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _PRUNE_ABOVE:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(self.capacity, now)
            else:
                bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def check(self, principal: Principal) -> None:
        wait = self.wait_for(principal.token_id)
        if wait > 0:
            raise TooManyRequests(
                f"token {principal.name!r} is over its {self.what} rate limit of {int(self.capacity)} requests "
                f"per minute ({self.variable}); retry after {max(1, math.ceil(wait))} s",
                wait,
            )

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]


class ConcurrencyLimiter:
    """At most ``limit`` requests in progress per key."""

    def __init__(self, limit: int, what: str, variable: str) -> None:
        self.limit = limit
        self.what = what
        self.variable = variable
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, principal: Principal) -> Iterator[None]:
        if self.limit <= 0:
            yield
            return
        key = principal.token_id
        with self._lock:
            active = self._active.get(key, 0)
            if active >= self.limit:
                raise TooManyRequests(
                    f"token {principal.name!r} already has {active} {self.what} requests in progress, the "
                    f"most allowed at once ({self.variable}); wait for one to finish",
                    1,
                )
            self._active[key] = active + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._active[key] - 1
                if left:
                    self._active[key] = left
                else:
                    del self._active[key]

    def active(self, token_id: str) -> int:
        with self._lock:
            return self._active.get(token_id, 0)


class AbuseLimits:
    """The limits of one app (one process): checked by the scope dependencies in ``app.api.deps``."""

    def __init__(self, settings: Settings) -> None:
        self.ingest_rate = RateLimiter(
            settings.rate_limit_ingest_per_minute, "ingest", "TOCSIN_RATE_LIMIT_INGEST_PER_MINUTE"
        )
        self.read_rate = RateLimiter(
            settings.rate_limit_read_per_minute, "read", "TOCSIN_RATE_LIMIT_READ_PER_MINUTE"
        )
        self.concurrent_ingest = ConcurrencyLimiter(
            settings.max_concurrent_ingest_per_token, "ingest", "TOCSIN_MAX_CONCURRENT_INGEST_PER_TOKEN"
        )

    @contextlib.contextmanager
    def ingesting(self, principal: Principal) -> Iterator[None]:
        """Count one ingest against the rate, then hold one of the token's concurrent-ingest slots."""
        self.ingest_rate.check(principal)
        with self.concurrent_ingest.slot(principal):
            yield

    def reading(self, principal: Principal) -> None:
        self.read_rate.check(principal)


class RequestTimeoutMiddleware:
    """Answers a request still unanswered after ``seconds`` instead of letting the client hang.

    What it can and cannot stop: a request waiting for its body (a slow or stalled upload) is cancelled and
    answered ``408`` (nothing was stored). A request whose work is under way in a worker thread (parsing,
    the database transaction) cannot be killed safely: it is answered ``504`` at once, the work is left to
    finish or roll back on its own (the client cannot know which; re-posting is safe, ingest is
    idempotent), and its own answer is dropped. Its concurrent-ingest slot stays taken until it ends, so a
    client retrying at once cannot pile work up. A response already started is never interrupted.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        receiving = False
        started = False
        timed_out = False

        async def tracked_receive() -> Message:
            nonlocal receiving
            if timed_out:
                return {"type": "http.disconnect"}
            receiving = True
            try:
                return await receive()
            finally:
                receiving = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the timeout answer went out in its place
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, tracked_receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.seconds)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done or started:
            await task  # finished (re-raises its error), or streaming its answer: let it be
            return
        timed_out = True
        waiting_for_body = receiving
        await self._answer(send, waiting_for_body)
        log.warning(
            "request timed out after %ss (%s)",
            self.seconds,
            "waiting for the body" if waiting_for_body else "still processing",
            extra={"path": scope.get("path")},
        )
        if waiting_for_body:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not waiting_for_body:
                raise
        except Exception as exc:  # its answer is gone; the error is only worth a log line
            log.warning("request failed after its timeout answer: %s", type(exc).__name__)

    async def _answer(self, send: Send, waiting_for_body: bool) -> None:
        if waiting_for_body:
            status, detail = (
                408,
                f"the request body did not arrive within {self.seconds:g} s (TOCSIN_REQUEST_TIMEOUT_SECONDS); "
                "nothing was stored",
            )
        else:
            status, detail = (
                504,
                f"the request did not complete within {self.seconds:g} s (TOCSIN_REQUEST_TIMEOUT_SECONDS); "
                "work under way may still complete. Re-posting findings is safe (ingest is idempotent).",
            )
        body = orjson.dumps({"detail": detail, "code": "timeout"})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"5"),
        ]
        if waiting_for_body:
            headers.append((b"connection", b"close"))  # the rest of the body is never read
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
