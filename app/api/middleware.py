"""Pure ASGI middleware: security headers, request id + access log + metrics, CORS, the request timeout
and the body size limit (outermost first)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import unexpected
from app.api.limits import AbuseLimits, RequestTimeoutMiddleware
from app.logs import request_id_var
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.settings import Settings

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


# The API serves JSON only: nothing may load, frame or submit anywhere.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# /docs (Swagger UI) and /redoc load their bundles from jsDelivr and start them with an inline script;
# ReDoc also loads Google Fonts and runs a worker from a blob. Still no framing and no foreign calls.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Adds the browser-facing hardening headers to every response, errors included (a header the app set
    itself wins)."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str], hsts: bool) -> None:
        self.app = app
        self.docs_paths = docs_paths
        common = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
        ]
        if hsts:
            common.append(("Strict-Transport-Security", HSTS))
        self.api_headers = [*common, ("Content-Security-Policy", API_CSP)]
        self.docs_headers = [*common, ("Content-Security-Policy", DOCS_CSP)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.docs_headers if scope.get("path") in self.docs_paths else self.api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: Any, settings: Settings) -> None:
    """Abuse limits on ``app.state.limits`` (checked by the scope dependencies) and the middleware stack;
    the last added runs first."""
    app.state.limits = AbuseLimits(settings)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        report_max_bytes=settings.max_report_bytes,
        report_prefix="/v1/ingest/",
    )
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_seconds)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    docs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        SecurityHeadersMiddleware, docs_paths=frozenset(p for p in docs if p), hsts=settings.hsts
    )
