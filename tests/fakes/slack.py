"""A local stand-in for the Slack Web API, so channel tests run slack-sdk's real client over real HTTP.

Answers like Slack does: HTTP 200 with ``{"ok": false, "error": ...}`` for API errors (``not_authed``,
``invalid_auth``, ``channel_not_found``, ``invalid_blocks``, ``no_text``, ``msg_too_long``), HTTP 429 with
``Retry-After`` when rate limited. Accepts JSON, form and query-string parameters (slack-sdk uses each for
different methods) and the token as ``Authorization: Bearer`` or a ``token`` parameter. Serves
``chat.postMessage``, ``chat.update`` and ``auth.test``.

Usage::

    with FakeSlack(token="xoxb-test", channels={"C0123ABCD": "security"}) as slack:
        ... options={"base_url": slack.url} ...
        slack.fail_next("ratelimited", retry_after=7)
        slack.hang_next(2.0)
        assert slack.calls[0].channel == "C0123ABCD"
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_TEXT = 40_000


@dataclass
class Call:
    """One request as the fake saw it (every request is recorded, failed ones too)."""

    method: str
    channel: str | None
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    ts: str | None
    token: str | None
    time: float
    params: dict[str, Any]
    status: int = 200
    error: str | None = None


@dataclass
class _Script:
    """A scripted answer: a failure kind or a hang, for the next ``times`` matching calls."""

    kind: str
    times: int
    retry_after: float | None = None
    channel: str | None = None
    hang_seconds: float = 0.0


class _ReusableServer(ThreadingHTTPServer):
    allow_reuse_address = True  # come back on the same port right after a stop (outage tests)


@dataclass
class FakeSlack:
    token: str = "xoxb-fake-token"
    channels: dict[str, str] = field(default_factory=lambda: {"C0123ABCD": "security"})
    """Channel id -> name; a target may be either the id or ``#name``."""
    webhook_path: str = "/services/T0FAKE/B0FAKE/0123456789abcdefWEBHOOK"
    """The incoming-webhook path this fake accepts (``webhook_url``); it posts to ``webhook_channel``."""
    webhook_channel: str = "C0123ABCD"

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.url = ""
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []
        self._last_ts = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- test controls -------------------------------------------------------------------------------

    def fail_next(
        self, kind: str, times: int = 1, *, retry_after: float | None = 1, channel: str | None = None
    ) -> None:
        """The next ``times`` calls (to ``channel`` only, if given) fail.

        ``kind``: ``"ratelimited"`` (HTTP 429 + Retry-After), ``"server_error"`` (HTTP 500, JSON body),
        ``"bad_gateway"`` (HTTP 502, an HTML page as a proxy sends), or any Slack error code such as
        ``"invalid_auth"`` or ``"channel_not_found"`` (HTTP 200, ok false).
        """
        with self._lock:
            self._scripts.append(_Script(kind, times, retry_after=retry_after, channel=channel))

    def hang_next(self, seconds: float, times: int = 1, *, channel: str | None = None) -> None:
        """The next ``times`` calls wait ``seconds`` before answering (past a client's timeout)."""
        with self._lock:
            self._scripts.append(_Script("hang", times, channel=channel, hang_seconds=seconds))

    @property
    def webhook_url(self) -> str:
        """The incoming-webhook URL (the credential of webhook mode): the fake's origin + ``webhook_path``."""
        return self.url.removesuffix("/api/") + self.webhook_path

    def updated(self) -> list[Call]:
        """``chat.update`` calls that answered ok."""
        with self._lock:
            return [c for c in self.calls if c.method == "chat.update" and c.error is None]

    def posted(self) -> list[Call]:
        """Messages that were accepted (``chat.postMessage`` calls that answered ok)."""
        with self._lock:
            return [c for c in self.calls if c.method == "chat.postMessage" and c.error is None]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Serve on ``port`` (0: any free port; pass the old port to come back after ``stop``)."""
        fake = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Answer at once on kept-alive connections (Nagle would hold each response ~40 ms back).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = _ReusableServer(("127.0.0.1", port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"
        return self.url

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        if url.path.startswith("/services/"):
            self._webhook(request, url.path)
            return
        method = url.path.removeprefix("/api/")
        params = _params(request, url.query)
        token = _token(request, params)
        call = Call(
            method=method,
            channel=_str(params.get("channel")),
            text=_str(params.get("text")),
            blocks=_blocks(params.get("blocks")),
            thread_ts=_str(params.get("thread_ts")),
            ts=None,
            token=token,
            time=time.time(),
            params=params,
        )
        with self._lock:
            self.calls.append(call)
            script = self._take_script(call.channel)
        if script is not None and script.kind == "hang":
            self._stopping.wait(script.hang_seconds)
            script = None
        status, headers, body = self._answer(call, token, script)
        call.status = status
        if isinstance(body, dict) and not body.get("ok"):
            call.error = str(body.get("error"))
        _send(request, status, headers, body)

    def _webhook(self, request: BaseHTTPRequestHandler, path: str) -> None:
        """An incoming webhook: plain-text answers (``ok``, ``no_service``, ``invalid_blocks``...) as Slack
        gives them; scripted failures apply. Accepted messages are kept as ``method == "webhook"`` calls."""
        params = _params(request, "")
        call = Call(
            method="webhook",
            channel=self.webhook_channel,
            text=_str(params.get("text")),
            blocks=_blocks(params.get("blocks")),
            thread_ts=None,
            ts=None,
            token=None,
            time=time.time(),
            params=params,
        )
        with self._lock:
            self.calls.append(call)
            script = self._take_script(None)
        if script is not None and script.kind != "hang":
            status, headers, body = _scripted(script)
        elif path != self.webhook_path:
            status, headers, body = 404, {}, "no_service"
        else:
            problem = _check_content(call.text, call.blocks)
            status, headers, body = (200, {}, "ok") if problem is None else (400, {}, str(problem["error"]))
        call.status = status
        if body != "ok":
            call.error = body if isinstance(body, str) else str(body.get("error"))
        else:
            with self._lock:
                call.ts = self._next_ts()
        _send(request, status, headers, body)

    def _take_script(self, channel: str | None) -> _Script | None:
        for script in self._scripts:
            if script.channel is None or script.channel in (channel, self._resolve(channel)):
                script.times -= 1
                if script.times <= 0:
                    self._scripts.remove(script)
                return script
        return None

    def _answer(
        self, call: Call, token: str | None, script: _Script | None
    ) -> tuple[int, dict[str, str], dict[str, Any] | str]:
        if script is not None:
            return _scripted(script)
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != self.token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if call.method == "auth.test":
            return 200, {}, _auth_test()
        if call.method == "chat.postMessage":
            return 200, {}, self._post(call)
        if call.method == "chat.update":
            return 200, {}, self._update(call)
        return 404, {}, {"ok": False, "error": "unknown_method"}

    def _post(self, call: Call) -> dict[str, Any]:
        channel = self._resolve(call.channel)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        problem = _check_content(call.text, call.blocks)
        if problem is not None:
            return problem
        with self._lock:
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "text": call.text or "", "user": "U0TOCSIN"}
            if call.blocks is not None:
                message["blocks"] = call.blocks
            if call.thread_ts:
                message["thread_ts"] = call.thread_ts
            self.messages[(channel, ts)] = message
        call.ts = ts
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, call: Call) -> dict[str, Any]:
        channel = self._resolve(call.channel)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        ts = _str(call.params.get("ts"))
        with self._lock:
            message = self.messages.get((channel, ts or ""))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        problem = _check_content(call.text, call.blocks)
        if problem is not None:
            return problem
        with self._lock:
            message["text"] = call.text or ""
            if call.blocks is not None:
                message["blocks"] = call.blocks
        call.ts = ts
        return {"ok": True, "channel": channel, "ts": ts, "text": call.text or "", "message": message}

    def _resolve(self, target: str | None) -> str | None:
        """The channel id for an id or ``#name`` target, as Slack resolves names for chat.postMessage."""
        if not target:
            return None
        if target in self.channels:
            return target
        name = target.removeprefix("#")
        return next((cid for cid, cname in self.channels.items() if cname == name), None)

    def _next_ts(self) -> str:
        """Slack's ``ts``: seconds.microseconds, unique and increasing within a channel (here: globally)."""
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


@contextmanager
def fake_slack(**kwargs: Any) -> Iterator[FakeSlack]:
    """``with fake_slack(token=...) as slack:`` — the same as using ``FakeSlack`` as a context manager."""
    with FakeSlack(**kwargs) as slack:
        yield slack


# -- request parsing ---------------------------------------------------------------------------------


def _params(request: BaseHTTPRequestHandler, query: str) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    length = int(request.headers.get("Content-Length") or 0)
    raw = request.rfile.read(length) if length else b""
    if not raw:
        return params
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = json.loads(raw)
        if isinstance(body, dict):
            params.update(body)
    else:
        params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
    return params


def _token(request: BaseHTTPRequestHandler, params: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization") or ""
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return _str(params.get("token"))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _blocks(value: Any) -> list[dict[str, Any]] | None:
    """Blocks arrive as a JSON array (JSON body) or as a JSON string (form body)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [{"type": "<unparseable>"}]
    return value if isinstance(value, list) else [{"type": "<not a list>"}]


# -- validation as Slack does it -------------------------------------------------------------------


def _check_content(text: str | None, blocks: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if not text and not blocks:
        return {"ok": False, "error": "no_text"}
    if text is not None and len(text) > MAX_TEXT:
        return {"ok": False, "error": "msg_too_long"}
    problems = _block_problems(blocks or [])
    if problems:
        return {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": problems}}
    return None


def _block_problems(blocks: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        pointer = f"[json-pointer:/blocks/{index}/text]"
        kind = block.get("type") if isinstance(block, dict) else None
        text = block.get("text") if isinstance(block, dict) else None
        text_value = text.get("text") if isinstance(text, dict) else None
        if kind == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text" or not text_value:
                problems.append(f"[ERROR] must provide a plain_text object {pointer}")
            elif len(text_value) > MAX_HEADER_TEXT:
                problems.append(f"[ERROR] must be less than {MAX_HEADER_TEXT + 1} characters {pointer}")
        elif kind == "section":
            if not text_value and not block.get("fields"):
                problems.append(f"[ERROR] must provide text or fields {pointer}")
            elif text_value and len(text_value) > MAX_SECTION_TEXT:
                problems.append(f"[ERROR] must be less than {MAX_SECTION_TEXT + 1} characters {pointer}")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"[ERROR] must provide 1 to 10 elements [json-pointer:/blocks/{index}]")
        elif kind not in ("divider", "actions", "image", "rich_text"):
            problems.append(f"[ERROR] unsupported type {kind!r} [json-pointer:/blocks/{index}/type]")
    return problems


# -- answers ---------------------------------------------------------------------------------------


def _auth_test() -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://fake-workspace.slack.com/",
        "team": "Fake Workspace",
        "user": "tocsin",
        "team_id": "T0FAKE",
        "user_id": "U0TOCSIN",
        "bot_id": "B0TOCSIN",
    }


def _scripted(script: _Script) -> tuple[int, dict[str, str], dict[str, Any] | str]:
    if script.kind == "ratelimited":
        headers = {} if script.retry_after is None else {"Retry-After": f"{script.retry_after:g}"}
        return 429, headers, {"ok": False, "error": "ratelimited"}
    if script.kind == "server_error":
        return 500, {}, {"ok": False, "error": "internal_error"}
    if script.kind == "bad_gateway":
        return 502, {}, "<html><body><h1>502 Bad Gateway</h1></body></html>"
    return 200, {}, {"ok": False, "error": script.kind}


def _send(
    request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: dict[str, Any] | str
) -> None:
    is_json = isinstance(body, dict)
    data = (json.dumps(body) if is_json else str(body)).encode()
    try:
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8" if is_json else "text/html")
        request.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout test): nothing to answer
