"""PagerDuty Events API v2: one alert per group, keyed by a stable ``dedup_key``, triggered, acknowledged
and resolved with the group's findings.

What a message sends (``POST {events_url}/v2/enqueue``):

- every finding ``resolved`` (event or status): ``resolve``;
- every finding ``acknowledged`` (status): ``acknowledge``;
- otherwise ``trigger`` when at least one finding is at or above ``options.min_severity`` (default high);
  a message of lower findings only is not sent (and reported ok: nothing to page about).

``dedup_key`` is the group key (or ``tocsin-<sha256>`` of it when longer than PagerDuty's 255 characters),
so repeats update the same alert instead of paging again; it is returned as ``thread_ref``. The channel's
secret is the integration's 32-character routing key: it travels in the request body only, never in a
detail. 202 is success; 400 is final (PagerDuty's ``errors`` are the detail); 429 and 5xx are retryable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.contracts import DeliveryResult, Notification, NotifiedFinding, OutboundPolicy, Severity
from integrations.channels._http import http_failure, json_body, parse_config, scrub, transport_failure
from integrations.channels._net import check_url, guarded_client

kind = "pagerduty"

DEFAULT_EVENTS_URL = "https://events.pagerduty.com"
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_DETAILED_FINDINGS = 20
PD_SEVERITY = {
    Severity.critical: "critical",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "info",
    Severity.informational: "info",
}
_RANK = {severity: rank for rank, severity in enumerate(Severity)}
EventAction = Literal["trigger", "acknowledge", "resolve"]


class Options(BaseModel):
    """What a user may set on a PagerDuty channel besides its target (a name for the service, free text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events_url: str = Field(DEFAULT_EVENTS_URL, description="Events API root (a regional or test URL).")
    min_severity: Severity = Field(
        Severity.high, description="Trigger only for findings at least this severe."
    )
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    insecure: bool = Field(False, description="Allow plain http (local testing only).")

    @model_validator(mode="after")
    def _url(self) -> Options:
        check_url(self.events_url, allow_http=self.insecure)
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(
        description="The PagerDuty service this routes to, as people call it (shown in details)."
    )
    options: Options = Field(default_factory=Options)

    @field_validator("target")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 200:
            raise ValueError("must name the PagerDuty service (1-200 characters), such as payments-oncall")
        return value


def parse(target: str, options: Mapping[str, Any]) -> Config:
    return parse_config(kind, Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    parse(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> PagerDutyChannel:
    return PagerDutyChannel(parse(target, options), secret, outbound or OutboundPolicy())


def dedup_key(group_key: str) -> str:
    """Stable per group, within PagerDuty's limit."""
    if 0 < len(group_key) <= MAX_DEDUP_KEY:
        return group_key
    return "tocsin-" + hashlib.sha256(group_key.encode()).hexdigest()


def render(notification: Notification) -> dict[str, Any]:
    """The Events v2 body this module would send (less the routing key), for ``/v1/findings/{id}/preview``;
    shown as a trigger whatever the channel's ``min_severity``. Pure, no I/O."""
    action = event_action(notification, Severity.informational) or "trigger"
    event: dict[str, Any] = {"event_action": action, "dedup_key": dedup_key(notification.group_key)}
    if action == "trigger" and _open(notification.findings):
        event["payload"] = trigger_payload(notification, Severity.informational, notification.channel)
    return event


def event_action(notification: Notification, min_severity: Severity) -> EventAction | None:
    """What this message does to the group's alert; None when nothing should be sent."""
    findings = notification.findings
    if findings and all(f.event == "resolved" or f.status == "resolved" for f in findings):
        # Resolve the group's alert only when none of its findings is still open.
        return "resolve" if notification.still_open_in_group == 0 else None
    if findings and all(f.status == "acknowledged" for f in findings):
        return "acknowledge"
    if any(_RANK[f.severity] >= _RANK[min_severity] for f in _open(findings)):
        return "trigger"
    return None


def _open(findings: list[NotifiedFinding]) -> list[NotifiedFinding]:
    return [f for f in findings if f.event != "resolved" and f.status != "resolved"]


def _resource(finding: NotifiedFinding) -> str:
    if finding.resource_id:
        return finding.resource_id
    where = "/".join(part for part in (finding.repository, finding.path) if part)
    return where or finding.resource_type or ""


def summary(findings: list[NotifiedFinding], total: int) -> str:
    top = findings[0]
    text = f"[{top.severity.value.upper()}] {top.title}"
    resource = _resource(top)
    if resource:
        text += f" — {resource}"
    if total > 1:
        text += f" (+{total - 1} more)"
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def trigger_payload(notification: Notification, min_severity: Severity, service: str) -> dict[str, Any]:
    """The ``payload`` of a trigger: the most severe paging finding leads; all shown findings are detailed."""
    paging = [f for f in _open(notification.findings) if _RANK[f.severity] >= _RANK[min_severity]]
    top = paging[0]
    details: dict[str, Any] = {
        "team": notification.team,
        "service": service,
        "group": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "total": notification.total,
        "findings": [_detail(f) for f in notification.findings[:MAX_DETAILED_FINDINGS]],
    }
    if len(notification.findings) > MAX_DETAILED_FINDINGS:
        details["findings_not_shown"] = notification.total - MAX_DETAILED_FINDINGS
    payload: dict[str, Any] = {
        "summary": summary([top, *[f for f in notification.findings if f is not top]], notification.total),
        "source": (_resource(top) or top.source)[:255],
        "severity": PD_SEVERITY[top.severity],
        "timestamp": top.last_seen.isoformat(),
        "component": (top.resource_type or top.type)[:255],
        "group": notification.team[:255],
        "class": top.type[:255],
        "custom_details": details,
    }
    return payload


def _detail(finding: NotifiedFinding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "event": finding.event,
        "status": finding.status,
        "title": finding.title,
        "severity": finding.severity.value,
        "score": finding.score,
        "score_reasons": finding.score_reasons,
        "resource": _resource(finding) or None,
        "account_id": finding.account_id,
        "region": finding.region,
        "source": finding.source,
        "type": finding.type,
        "remediation": finding.remediation,
        "url": finding.url,
    }


class PagerDutyChannel:
    """One PagerDuty integration (routing key). Holds one guarded HTTP client, opened on first send."""

    kind = kind

    def __init__(self, config: Config, secret: SecretStr | None, outbound: OutboundPolicy) -> None:
        self.config = config
        self.endpoint = config.options.events_url.rstrip("/") + "/"
        self._routing_key = secret.get_secret_value().strip() if secret is not None else ""
        self._outbound = outbound
        self._client: httpx.AsyncClient | None = None

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._routing_key:
            return DeliveryResult(ok=False, detail="pagerduty channel needs a routing key: set secret_ref")
        options = self.config.options
        action = event_action(notification, options.min_severity)
        key = dedup_key(notification.group_key)
        if action is None:
            return DeliveryResult(
                ok=True,
                detail=f"pagerduty: nothing at or above {options.min_severity.value}, no event sent",
                thread_ref=notification.thread_ref,
            )
        event: dict[str, Any] = {"routing_key": self._routing_key, "event_action": action, "dedup_key": key}
        if action == "trigger":
            event["payload"] = trigger_payload(notification, options.min_severity, self.config.target)
            event["client"] = "Tocsin"
            links = [
                {"href": f.url, "text": f.title[:100]} for f in notification.findings[:5] if f.url is not None
            ]
            if links:
                event["links"] = links
        what = f"pagerduty {action}"
        try:
            response = await self._http().post("v2/enqueue", json=event)
        except httpx.HTTPError as exc:
            return transport_failure(what, exc, timeout=options.timeout_seconds, secrets=[self._routing_key])
        if response.status_code == 202 or response.is_success:
            return DeliveryResult(
                ok=True,
                status_code=response.status_code,
                detail=f"{what} sent to {self.config.target}",
                thread_ref=key,
            )
        return http_failure(what, response, secrets=[self._routing_key], explanation=self._explain(response))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _explain(self, response: httpx.Response) -> str:
        """PagerDuty's 400 says ``{"status", "message", "errors": [...]}``: keep its messages."""
        data = json_body(response)
        if not isinstance(data, dict):
            return ""
        errors = data.get("errors")
        parts = [str(e) for e in errors] if isinstance(errors, list) else []
        text = "; ".join(parts) or str(data.get("message") or "")
        return scrub(re.sub(r"\s+", " ", text), [self._routing_key])[:200]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = guarded_client(
                self._outbound,
                base_url=self.endpoint,
                timeout=self.config.options.timeout_seconds,
                headers={"User-Agent": "tocsin"},
            )
        return self._client
