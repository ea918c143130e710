"""Slack: posts a notification with ``chat.postMessage`` through slack-sdk's async client.

The channel only classifies what happened (``DeliveryResult``): the client is built with no retry handlers,
because retries and backoff are owned once by delivery/ and a second, hidden retry loop here would multiply
attempts and hide 429s from the notification log. Messages of one group form a thread: the first message's
``ts`` is returned as ``thread_ref`` and later messages reply under it.

The bot token is a ``SecretStr`` resolved by delivery/ at send time; it goes into the Authorization header
and nowhere else (never into ``detail``, which is stored and shown in the API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from app.contracts import DeliveryResult, Notification, OutboundPolicy
from integrations.channels import slack_blocks

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
    if not isinstance(options, Mapping):
        raise ValueError("invalid slack channel: options: must be an object of option names to values")
    try:
        return Config.model_validate({"target": target, "options": dict(options)})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                known = ", ".join(Options.model_fields)
                problems.append(f"{field}: unknown option (slack accepts {known})")
            else:
                problems.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
        raise ValueError(f"invalid slack channel: {'; '.join(problems)}") from None


def validate(target: str, options: Mapping[str, Any]) -> None:
    """What the API calls when a channel is created: no secret needed, raises ValueError naming the field."""
    parse_config(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> SlackChannel:
    """A ready channel; a missing secret is reported by ``send`` (a user can still fix it and retry).
    The delivery layer checks ``endpoint`` against the outbound policy before each send."""
    return SlackChannel(parse_config(target, options), secret)


class SlackChannel:
    """One Slack destination. Holds one HTTP session, opened on first send and closed by ``aclose``."""

    kind = kind

    def __init__(self, config: Config, secret: SecretStr | None) -> None:
        self.config = config
        self.endpoint = config.options.base_url
        self._token = secret.get_secret_value().strip() if secret is not None else ""
        self._session: aiohttp.ClientSession | None = None

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._token:
            return DeliveryResult(
                ok=False, retryable=False, detail="slack channel needs a bot token: set secret_ref"
            )
        text, blocks = slack_blocks.render(notification)
        try:
            response = await self._client().chat_postMessage(
                channel=self.config.target,
                text=text,
                blocks=blocks,
                thread_ts=notification.thread_ref,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            return self._api_failure(exc)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return DeliveryResult(
                ok=False,
                retryable=True,
                detail=f"slack timed out after {self.config.options.timeout_seconds:g}s",
            )
        except aiohttp.ClientError as exc:
            return DeliveryResult(
                ok=False, retryable=True, detail=self._scrub(f"slack connection failed: {type(exc).__name__}")
            )
        except SlackClientError as exc:
            return DeliveryResult(
                ok=False, retryable=False, detail=self._scrub(f"slack client error: {type(exc).__name__}")
            )
        ts = response.get("ts")
        root = notification.thread_ref or (ts if isinstance(ts, str) else None)
        return DeliveryResult(
            ok=True,
            status_code=response.status_code,
            detail=f"posted to {response.get('channel')}",
            thread_ref=root,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> AsyncWebClient:
        """A client on this channel's session; the session is made here so it belongs to the running loop."""
        timeout = self.config.options.timeout_seconds
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        return AsyncWebClient(
            token=self._token,
            base_url=self.endpoint,
            timeout=int(timeout) or 1,
            session=self._session,
            retry_handlers=[],
        )

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
