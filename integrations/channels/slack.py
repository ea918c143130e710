"""Slack: posts a notification with ``chat.postMessage`` through slack-sdk's async client.

The channel only classifies what happened (``DeliveryResult``): the client is built with no retry handlers,
because retries and backoff are owned once by delivery/ and a second, hidden retry loop here would multiply
attempts and hide 429s from the notification log. Messages of one group form a thread: the first message's
``ts`` is returned as ``thread_ref`` and later messages reply under it.

The bot token is a ``SecretStr`` resolved by delivery/ at send time; it goes into the Authorization header
and nowhere else (never into ``detail``, which is stored and shown in the API).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from app.contracts import DeliveryResult, Notification, OutboundPolicy
from integrations.channels import _http, slack_blocks
from integrations.channels._net import guarded_aiohttp_session

kind = "slack"

DEFAULT_BASE_URL = "https://slack.com/api/"
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "service_unavailable", "request_timeout", "fatal_error"}
)
"""Slack ``error`` codes a later attempt may fix; any other error code is final (bad token, unknown
channel, bot not in channel, archived channel, blocks Slack refuses...)."""

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_CHANNEL_NAME = re.compile(r"^#[a-z0-9][a-z0-9._-]{0,79}$")
_DETAIL_MAX = 300


class Options(BaseModel):
    """What a user may set on a Slack channel besides its target; anything else is refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(DEFAULT_BASE_URL, description="Slack Web API base URL (a proxy or a test fake).")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Whole-request timeout per attempt.")
    mode: Literal["bot", "webhook"] = Field(
        "bot",
        description="bot: chat.postMessage with a bot token (threads, buttons, updates). webhook: post to "
        "the incoming-webhook URL held in the secret (no threads, no buttons, no updates).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"


class Config(BaseModel):
    """A validated Slack channel: where to post (a channel id such as C0123ABCD, or #name) and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    options: Options = Field(default_factory=Options)

    @field_validator("target")
    @classmethod
    def _slack_channel(cls, value: str) -> str:
        value = value.strip()
        if not (_CHANNEL_ID.match(value) or _CHANNEL_NAME.match(value)):
            raise ValueError(
                "must be a Slack channel id such as C0123ABCD or a channel name such as #security-alerts"
            )
        return value


def parse_config(target: str, options: Mapping[str, Any]) -> Config:
    """Validate target and options; raises ValueError naming each bad field (safe to show a user)."""
    return _http.parse_config("slack", Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    """What the API calls when a channel is created: no secret needed, raises ValueError naming the field."""
    parse_config(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> SlackChannel | SlackWebhookChannel:
    """A ready channel; a missing secret is reported by ``send`` (a user can still fix it and retry).
    The delivery layer checks ``endpoint`` against the outbound policy before each send."""
    config = parse_config(target, options)
    policy = outbound or OutboundPolicy()
    if config.options.mode == "webhook":
        return SlackWebhookChannel(config, secret, policy)
    return SlackChannel(config, secret, policy)


def render(notification: Notification, *, actions: bool = True) -> dict[str, Any]:
    """The ``chat.postMessage`` arguments this module would send for ``notification`` (less the channel and
    thread, which come from the channel's config and the group): what ``/v1/findings/{id}/preview`` shows.
    Pure, no I/O. Every channel module exposes a ``render`` like it so previews work for every kind."""
    text, blocks = slack_blocks.render(notification, actions=actions)
    return {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


def _only_resolved(notification: Notification) -> bool:
    return bool(notification.findings) and all(f.event == "resolved" for f in notification.findings)


class SlackChannel:
    """One Slack destination. Holds one HTTP session, opened on first send and closed by ``aclose``."""

    kind = kind

    def __init__(
        self, config: Config, secret: SecretStr | None, outbound: OutboundPolicy | None = None
    ) -> None:
        self.config = config
        self.endpoint = config.options.base_url
        self._token = secret.get_secret_value().strip() if secret is not None else ""
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._outbound = outbound or OutboundPolicy()

    async def send(self, notification: Notification) -> DeliveryResult:
        """Post the message (a thread reply when the group has a thread). When it only tells that findings
        resolved and the group has a root message, the root is updated too, so the channel shows at a
        glance that the problem is gone; a failed update does not fail the (already posted) reply."""
        if not self._token:
            return DeliveryResult(
                ok=False, retryable=False, detail="slack channel needs a bot token: set secret_ref"
            )
        payload = render(notification)
        response, failure = await self._call(
            self._client().chat_postMessage(
                channel=self.config.target, thread_ts=notification.thread_ref, **payload
            )
        )
        if failure is not None:
            return failure
        assert response is not None
        ts = response.get("ts")
        root = notification.thread_ref or (ts if isinstance(ts, str) else None)
        detail = f"posted to {response.get('channel')}"
        if notification.thread_ref and _only_resolved(notification):
            channel_id = str(response.get("channel") or self.config.target)
            text, blocks = slack_blocks.render(notification, actions=False)
            blocks.insert(-1, slack_blocks.resolved_note())
            updated = await self.update_message(channel_id, notification.thread_ref, text, blocks)
            detail += (
                "; root message marked resolved" if updated.ok else f"; root not updated: {updated.detail}"
            )
        return DeliveryResult(
            ok=True, status_code=response.status_code, detail=detail[:_DETAIL_MAX], thread_ref=root
        )

    async def update_message(
        self, channel_id: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> DeliveryResult:
        """``chat.update`` of a message this bot posted (``channel_id`` must be the id, not ``#name``)."""
        if not self._token:
            return DeliveryResult(
                ok=False, retryable=False, detail="slack channel needs a bot token: set secret_ref"
            )
        response, failure = await self._call(
            self._client().chat_update(channel=channel_id, ts=ts, text=text, blocks=blocks)
        )
        if failure is not None:
            return failure
        assert response is not None
        return DeliveryResult(ok=True, status_code=response.status_code, detail=f"updated {ts}")

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _call(self, request: Awaitable[Any]) -> tuple[Any, DeliveryResult | None]:
        """Await one Web API call; (response, None) or (None, the failure classified)."""
        try:
            return await request, None
        except SlackApiError as exc:
            return None, self._api_failure(exc)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            timeout = self.config.options.timeout_seconds
            return None, DeliveryResult(
                ok=False, retryable=True, detail=f"slack timed out after {timeout:g}s"
            )
        except aiohttp.ClientError as exc:
            detail = self._scrub(f"slack connection failed: {type(exc).__name__}")
            return None, DeliveryResult(ok=False, retryable=True, detail=detail)
        except SlackClientError as exc:
            detail = self._scrub(f"slack client error: {type(exc).__name__}")
            return None, DeliveryResult(ok=False, retryable=False, detail=detail)

    def _client(self) -> AsyncWebClient:
        """A client on this channel's session; the session is made here so it belongs to the running loop."""
        timeout = self.config.options.timeout_seconds
        if self._session is None or self._session.closed or self._web is None:
            self._session = guarded_aiohttp_session(self._outbound, timeout)
            # One client per session: building a client per message was a fifth of a worker's CPU.
            self._web = AsyncWebClient(
                token=self._token,
                base_url=self.endpoint,
                timeout=int(timeout) or 1,
                session=self._session,
                retry_handlers=[],
            )
        return self._web

    def _api_failure(self, exc: SlackApiError) -> DeliveryResult:
        """Classify an answer Slack (or a proxy in front of it) gave: HTTP status first, then Slack's code."""
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        data = getattr(response, "data", None)
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        retry_after = _retry_after(getattr(response, "headers", None))
        server_side = isinstance(status, int) and (status == 429 or status >= 500)
        retryable = server_side or error in RETRYABLE_ERRORS
        detail = f"slack error {error} (HTTP {status})" if error else f"slack HTTP {status}"
        if retry_after is not None:
            detail += f", retry after {retry_after:g}s"
        hint = _first_message(data)
        if hint:
            detail += f": {hint}"
        return DeliveryResult(
            ok=False,
            retryable=retryable,
            status_code=status if isinstance(status, int) else None,
            detail=self._scrub(detail)[:_DETAIL_MAX],
            retry_after_seconds=retry_after if retryable else None,
        )

    def _scrub(self, text: str) -> str:
        """Belt and braces: no path should put the token in a detail, and this makes sure none does."""
        return text.replace(self._token, "***") if self._token else text


def _retry_after(headers: Any) -> float | None:
    """``Retry-After`` as seconds (Slack sends a number; an HTTP date is accepted too)."""
    value = headers.get("Retry-After") if headers is not None and hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _first_message(data: Any) -> str:
    """Slack explains ``invalid_blocks`` in ``response_metadata.messages``; keep the first, shortened."""
    if not isinstance(data, dict):
        return ""
    metadata = data.get("response_metadata")
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], str):
        return messages[0][:160]
    return ""


class SlackWebhookChannel:
    """Incoming-webhook mode, for teams without a bot: the secret is the webhook URL (it embeds the
    credential), so it is never put in ``detail`` or a log line, and ``endpoint`` is only its origin (what the
    outbound guard checks). No threads, no buttons and no updates: a webhook message cannot be changed."""

    kind = kind

    def __init__(
        self, config: Config, secret: SecretStr | None, outbound: OutboundPolicy | None = None
    ) -> None:
        self.config = config
        self._url = secret.get_secret_value().strip() if secret is not None else ""
        self.endpoint = _origin(self._url) or "https://hooks.slack.com/"
        self._session: aiohttp.ClientSession | None = None
        self._outbound = outbound or OutboundPolicy()

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._url:
            return DeliveryResult(
                ok=False,
                retryable=False,
                detail="slack webhook mode needs the incoming-webhook URL in the channel's secret_ref",
            )
        if _origin(self._url) is None:
            return DeliveryResult(
                ok=False, retryable=False, detail="the slack webhook secret is not an http(s) URL"
            )
        payload = render(notification, actions=False)
        timeout = self.config.options.timeout_seconds
        if self._session is None or self._session.closed:
            self._session = guarded_aiohttp_session(self._outbound, timeout)
        client = AsyncWebhookClient(
            self._url, timeout=int(timeout) or 1, session=self._session, retry_handlers=[], logger=_QUIET
        )
        try:
            response = await client.send(**payload)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return DeliveryResult(
                ok=False, retryable=True, detail=f"slack webhook timed out after {timeout:g}s"
            )
        except aiohttp.ClientError as exc:
            return DeliveryResult(
                ok=False, retryable=True, detail=f"slack webhook connection failed: {type(exc).__name__}"
            )
        except Exception as exc:  # slack-sdk wraps other failures; the message may quote the URL
            return DeliveryResult(
                ok=False, retryable=True, detail=f"slack webhook failed: {type(exc).__name__}"
            )
        status = response.status_code
        body = self._scrub(str(response.body or ""))[:120]
        if 200 <= status < 300:
            return DeliveryResult(ok=True, status_code=status, detail="posted through the incoming webhook")
        retry_after = _retry_after(response.headers)
        retryable = status == 429 or status >= 500
        detail = f"slack webhook HTTP {status}" + (f": {body}" if body and "<" not in body else "")
        return DeliveryResult(
            ok=False,
            retryable=retryable,
            status_code=status,
            detail=detail[:_DETAIL_MAX],
            retry_after_seconds=retry_after if retryable else None,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _scrub(self, text: str) -> str:
        return text.replace(self._url, "***") if self._url else text


_QUIET = logging.getLogger("tocsin.channels.slack.webhook")
"""slack-sdk's webhook client logs its URL (the credential) at debug level; it logs here, kept quiet."""
_QUIET.setLevel(logging.WARNING)


def _origin(url: str) -> str | None:
    """``scheme://host[:port]/`` of an http(s) URL, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        return None
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}{f':{port}' if port else ''}/"
