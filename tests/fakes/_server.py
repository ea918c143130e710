"""The plumbing the HTTP fakes (GitHub, PagerDuty, webhook receiver) share: a threaded local server that
records every request, scripted failures for the next calls, and hangs that end when the server stops."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    time: float
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Script:
    """A scripted answer for the next ``times`` requests: a status (with headers and body) or a hang."""

    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang_seconds: float = 0.0


Answer = tuple[int, dict[str, str], Any]


class FakeServer:
    """Subclasses implement ``answer(request) -> (status, headers, body)``; a dict/list body is sent as JSON."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.url = ""
        self.lock = threading.RLock()
        self._scripts: list[Script] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- controls --------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = f"{retry_after:g}"
        with self.lock:
            self._scripts.append(Script(status, times, extra, body))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self.lock:
            self._scripts.append(Script(0, times, hang_seconds=seconds))

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PATCH(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    # -- dispatch --------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=url.path,
            query={k: v[0] for k, v in parse_qs(url.query).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
            time=time.time(),
        )
        with self.lock:
            self.requests.append(request)
            script = self._take_script()
        if script is not None and script.hang_seconds:
            self._stopping.wait(script.hang_seconds)
            script = None
        if script is not None:
            status, headers, body = script.status, script.headers, script.body
        else:
            with self.lock:
                status, headers, body = self.answer(request)
        request.status = status
        _send(handler, status, headers, body)

    def _take_script(self) -> Script | None:
        if not self._scripts:
            return None
        script = self._scripts[0]
        script.times -= 1
        if script.times <= 0:
            self._scripts.pop(0)
        return script


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any) -> None:
    if body is None:
        data = b""
        content_type = "text/plain"
    elif isinstance(body, dict | list):
        data = json.dumps(body).encode()
        content_type = "application/json; charset=utf-8"
    else:
        data = str(body).encode()
        content_type = "text/html"
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
