"""Generic webhook: POSTs a versioned JSON payload (``tocsin.finding.v1``), signed with the channel's
secret, to a user-configured https URL.

Every request carries:

- ``X-Tocsin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<raw body>" keyed with the secret>``;
- ``X-Tocsin-Message-Id``: the notification id, the same on every retry of one message (deduplicate on it);
- ``X-Tocsin-Event``: the payload's ``event``; ``Content-Type: application/json``.

A receiver verifies a request by recomputing the HMAC over the *raw* body bytes (before parsing JSON),
comparing it in constant time with ``v1``, and refusing a ``t`` older than a few minutes (replays); the
Python example and the payload's JSON schema are in ``docs/webhooks.md`` (the tests run that example).

2xx is success; 410 Gone is final (the receiver is retired); 429 (``Retry-After``) and 5xx are retryable;
other 4xx are final; redirects are not followed. The URL is checked at connect time by the outbound guard.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.contracts import DeliveryResult, Notification, NotifiedFinding, OutboundPolicy
from integrations.channels._http import http_failure, parse_config, transport_failure
from integrations.channels._net import check_url, guarded_client

kind = "webhook"

SCHEMA = "tocsin.finding.v1"
SIGNATURE_HEADER = "X-Tocsin-Signature"
MESSAGE_ID_HEADER = "X-Tocsin-Message-Id"
EVENT_HEADER = "X-Tocsin-Event"

PayloadEvent = Literal["new", "regressed", "escalated", "resolved", "reminder", "acknowledged", "mixed"]


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: float = Field(10.0, gt=0, le=120)
    insecure: bool = Field(False, description="Allow a plain http URL (local testing only).")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(description="The receiver's URL (https).")
    options: Options = Field(default_factory=Options)

    @field_validator("target")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _url(self) -> Config:
        try:
            check_url(self.target, allow_http=self.options.insecure)
        except ValueError as exc:
            raise ValueError(f"target: {exc}") from None
        return self


def parse(target: str, options: Mapping[str, Any]) -> Config:
    return parse_config(kind, Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    parse(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> WebhookChannel:
    return WebhookChannel(parse(target, options), secret, outbound or OutboundPolicy())


# -- the payload (tocsin.finding.v1) ---------------------------------------------------------------------
# Versioned: fields may be added within v1; a field is never removed or changes meaning without a v2.


class WebhookFinding(BaseModel):
    """One finding of the message."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable finding id in Tocsin.")
    event: Literal["new", "regressed", "escalated", "resolved", "reminder"] = Field(
        description="Why the finding is in this message."
    )
    status: str = Field(
        description="Triage status: open, acknowledged, resolved, suppressed, false_positive."
    )
    title: str
    severity: Literal["informational", "low", "medium", "high", "critical"]
    severity_score: float = Field(description="0-100.")
    score: float = Field(description="Risk score 0-100 (severity with context).")
    score_reasons: list[str]
    source: str
    type: str
    resource: dict[str, str | None] = Field(description="type, id, account_id, region.")
    location: dict[str, str | int | None] | None = Field(
        description="repository, path, line (code findings)."
    )
    remediation: str | None
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    url: str | None = Field(description="Link to the finding in Tocsin, when TOCSIN_PUBLIC_URL is set.")


class WebhookGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Stable group key: messages of one group share it.")
    labels: dict[str, str]


class WebhookPayload(BaseModel):
    """The body of every webhook request."""

    model_config = ConfigDict(extra="forbid", title="tocsin.finding.v1")

    schema_: Literal["tocsin.finding.v1"] = Field(alias="schema")
    event: PayloadEvent = Field(description="The findings' common event, or mixed.")
    team: str
    group: WebhookGroup
    findings: list[WebhookFinding] = Field(description="Most severe first; may be fewer than total.")
    total: int = Field(description="How many findings the group has due now.")
    digest: bool = Field(description="True when the message collects what quiet hours held back.")
    message_id: str = Field(description="Same as X-Tocsin-Message-Id; the same on every retry.")
    sent_at: datetime = Field(description="When this attempt was made (UTC).")


def _finding(finding: NotifiedFinding) -> WebhookFinding:
    code = finding.repository or finding.path
    return WebhookFinding(
        id=finding.id,
        event=finding.event,
        status=finding.status,
        title=finding.title,
        severity=finding.severity.value,
        severity_score=finding.severity_score,
        score=finding.score,
        score_reasons=list(finding.score_reasons),
        source=finding.source,
        type=finding.type,
        resource={
            "type": finding.resource_type,
            "id": finding.resource_id,
            "account_id": finding.account_id,
            "region": finding.region,
        },
        location={"repository": finding.repository, "path": finding.path, "line": finding.line}
        if code
        else None,
        remediation=finding.remediation,
        occurrences=finding.occurrences,
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        url=finding.url,
    )


def payload(notification: Notification, sent_at: datetime) -> WebhookPayload:
    events = {finding.event for finding in notification.findings}
    event: PayloadEvent = events.pop() if len(events) == 1 else "mixed"
    return WebhookPayload.model_validate(
        {
            "schema": SCHEMA,
            "event": event,
            "team": notification.team,
            "group": WebhookGroup(key=notification.group_key, labels=dict(notification.group_labels)),
            "findings": [_finding(f) for f in notification.findings],
            "total": notification.total,
            "digest": notification.digest,
            "message_id": notification.id,
            "sent_at": sent_at,
        }
    )


def render(notification: Notification) -> dict[str, Any]:
    """The JSON body this module would send now, for ``/v1/findings/{id}/preview``. Pure, no I/O."""
    return payload(notification, datetime.now(UTC)).model_dump(mode="json", by_alias=True)


def payload_schema() -> dict[str, Any]:
    """The JSON schema published in docs/webhooks.md."""
    return WebhookPayload.model_json_schema(by_alias=True)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Tocsin-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookChannel:
    """One receiver URL. Holds one guarded HTTP client, opened on first send."""

    kind = kind

    def __init__(
        self,
        config: Config,
        secret: SecretStr | None,
        outbound: OutboundPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.endpoint = config.target
        self._secret = secret.get_secret_value() if secret is not None else ""
        self._outbound = outbound
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._secret:
            return DeliveryResult(ok=False, detail="webhook channel needs a signing secret: set secret_ref")
        now = self._clock()
        body_model = payload(notification, datetime.fromtimestamp(now, UTC))
        body = json.dumps(body_model.model_dump(mode="json", by_alias=True), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret.encode(), int(now), body),
            MESSAGE_ID_HEADER: notification.id,
            EVENT_HEADER: body_model.event,
        }
        timeout = self.config.options.timeout_seconds
        try:
            response = await self._http().post(self.config.target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure("webhook", exc, timeout=timeout, secrets=[self._secret])
        if response.is_success:
            return DeliveryResult(
                ok=True,
                status_code=response.status_code,
                detail=f"webhook accepted (HTTP {response.status_code})",
            )
        explanation = (
            "the receiver is gone (410): remove or fix the channel" if response.status_code == 410 else ""
        )
        snippet = " ".join(response.text[:120].split()) if not explanation else ""
        return http_failure("webhook", response, secrets=[self._secret], explanation=explanation or snippet)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = guarded_client(
                self._outbound,
                timeout=self.config.options.timeout_seconds,
                headers={"User-Agent": "tocsin-webhook/1"},
            )
        return self._client
