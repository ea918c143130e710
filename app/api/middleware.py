"""Pure ASGI middleware: request id + access log + metrics, and the body size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import unexpected
from app.logs import request_id_var
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("tocsin.http")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``, taken from the caller when well-formed), logs it once.

    It also answers an unhandled exception itself: Starlette's last-resort handler runs outside every
    middleware, where the response would lose its ``X-Request-ID`` and the log line its request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = offered if _VALID_REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if started_response:
                    raise
                response = await unexpected(Request(scope), exc)
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 1), "route": route},
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuses a body over the limit with 413: at once from Content-Length, or as soon as the stream
    passes the limit, so memory stays flat whatever a client sends."""

    def __init__(self, app: ASGIApp, max_bytes: int, report_max_bytes: int, report_prefix: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.report_max_bytes = report_max_bytes
        self.report_prefix = report_prefix

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """Whole scanner reports (``/v1/ingest/...``) have a limit of their own; batches are smaller."""
        if str(scope.get("path", "")).startswith(self.report_prefix):
            return self.report_max_bytes, "TOCSIN_MAX_REPORT_BYTES"
        return self.max_bytes, "TOCSIN_MAX_BODY_BYTES"

    async def _refuse(self, send: Send, limit: int, variable: str) -> None:
        body = orjson.dumps(
            {"detail": f"request body exceeds {limit} bytes ({variable}); split it", "code": "too_large"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, variable = self._limit(scope)
        for name, value in scope.get("headers") or []:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit, variable)
                return
        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                # The app caught the overflow itself (FastAPI turns any error while it parses a body
                # into a 400): answer the 413 in place of whatever it wanted to send.
                if message["type"] == "http.response.start" and not response_started:
                    response_started = True
                    await self._refuse(send, limit, variable)
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._refuse(send, limit, variable)


class _BodyTooLarge(Exception):
    pass


def install(app: Any, max_body_bytes: int, max_report_bytes: int) -> None:
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=max_body_bytes,
        report_max_bytes=max_report_bytes,
        report_prefix="/v1/ingest/",
    )
    app.add_middleware(RequestContextMiddleware)
