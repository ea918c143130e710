"""Jira: a notification group is a ticket (Cloud REST v3 with ADF, or Server/Data Center REST v2 with wiki).

The group's ``thread_ref`` is the issue key. Without one, the channel first searches for the group's
recovery label (``tocsin-<12 hex of sha256(group key)>``) so a ticket is created once even if Tocsin lost
its store or a send was recorded as failed after Jira took it; then it creates the issue and returns its
key. With a key: a message whose findings are all ``resolved`` applies ``transition_resolve``; one with a
``regressed`` finding applies ``transition_reopen`` and comments; anything else (new, reminder,
escalated) comments. Transitions are found by name through ``GET .../transitions``; when the named one is
not available from the ticket's status (already done, a custom workflow) the channel comments instead of
failing, so the message is never lost.

The hash, not the first characters of the finding id, makes the label: ids start with a millisecond
timestamp, so two findings created together would share their first 12 characters.

Retries are delivery/'s: this module only classifies (429 with ``Retry-After``, 5xx and timeouts
retryable; 400 with Jira's ``errorMessages``/``errors`` named in the detail, 401/403/404 final). The API
token goes into the Authorization header only; every detail is scrubbed of it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from app.contracts import DeliveryResult, Notification, OutboundPolicy, Severity
from integrations.channels import _http, jira_render
from integrations.channels._net import OutboundRefused, check_url, guarded_client

kind = "jira"

DEFAULT_PRIORITIES: dict[str, str] = {
    Severity.critical.value: "Highest",
    Severity.high.value: "High",
    Severity.medium.value: "Medium",
    Severity.low.value: "Low",
    Severity.informational.value: "Lowest",
}
TriageTarget = Literal["resolved", "false_positive", "suppressed"]
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")
_CUSTOM_FIELD = re.compile(r"^customfield_[0-9]{1,10}$")
_DETAIL_MAX = 400


class Options(BaseModel):
    """What a user may set on a Jira channel besides its target (the project key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(..., description="Jira site, e.g. https://acme.atlassian.net")
    flavor: Literal["cloud", "server"] = Field("cloud", description="cloud: REST v3 + ADF; server: v2 + wiki")
    insecure: bool = Field(False, description="Allow http:// (local testing only).")
    user: str | None = Field(None, description="Account email for Cloud basic auth; unset: Bearer PAT.")
    issue_type: str = Field("Task", min_length=1, max_length=255)
    priority_map: dict[str, str] = Field(default_factory=dict, description="severity -> priority name")
    labels: list[str] = Field(default_factory=list, max_length=50)
    components: list[str] = Field(default_factory=list, max_length=50)
    custom_fields: dict[str, Any] = Field(default_factory=dict, description="customfield_NNNNN -> value")
    transition_resolve: str = Field("Done", min_length=1, max_length=255)
    transition_reopen: list[str] = Field(default_factory=lambda: ["Reopen", "To Do"], min_length=1)
    resolution_map: dict[str, TriageTarget] = Field(
        default_factory=dict,
        description="Back-sync: Jira resolution name -> finding status (default resolved).",
    )
    suppress_days: int = Field(30, ge=1, le=3650, description="Back-sync: how long 'suppressed' lasts.")
    timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("priority_map")
    @classmethod
    def _severities(cls, value: dict[str, str]) -> dict[str, str]:
        labels = {s.value for s in Severity}
        unknown = sorted(set(value) - labels)
        if unknown:
            raise ValueError(f"unknown severities {unknown}; use {', '.join(s.value for s in Severity)}")
        if any(not isinstance(v, str) or not v.strip() for v in value.values()):
            raise ValueError("priority names must be non-empty strings")
        return {**DEFAULT_PRIORITIES, **value}

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label or len(label) > 255 or any(c.isspace() for c in label):
                raise ValueError(f"label {label[:40]!r}: Jira labels are 1-255 characters without spaces")
        return value

    @field_validator("custom_fields")
    @classmethod
    def _custom(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _CUSTOM_FIELD.match(name):
                raise ValueError(f"{name!r}: custom field ids look like customfield_10042")
        return value

    @field_validator("transition_reopen", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _url(self) -> Options:
        try:
            check_url(self.base_url, allow_http=self.insecure)
        except ValueError as exc:
            raise ValueError(f"base_url: {exc}") from None
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    options: Options

    @field_validator("target")
    @classmethod
    def _project(cls, value: str) -> str:
        value = value.strip()
        if not _PROJECT_KEY.match(value):
            raise ValueError("must be a Jira project key such as SEC")
        return value


def parse_config(target: str, options: Mapping[str, Any]) -> Config:
    """Validate target and options; raises ValueError naming each bad field (safe to show a user)."""
    return _http.parse_config("jira", Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    parse_config(target, options)


def render(notification: Notification) -> dict[str, Any]:
    """What this module would send for ``notification``, for ``/v1/findings/{id}/preview``: the issue's
    summary and Cloud (ADF) description, the Server/DC (wiki) description, and the comment a later message
    of the group would add. Pure, no I/O."""
    return {
        "summary": jira_render.summary(notification),
        "description_cloud": jira_render.body(notification, "cloud"),
        "description_server": jira_render.body(notification, "server"),
        "comment": jira_render.body(notification, "cloud", jira_render.comment_verb(notification)),
    }


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> JiraChannel:
    return JiraChannel(parse_config(target, options), secret, outbound or OutboundPolicy())


def recovery_label(group_key: str) -> str:
    """The label that finds a group's ticket again without the store."""
    return "tocsin-" + hashlib.sha256(group_key.encode()).hexdigest()[:12]


class _Failed(Exception):
    """A step failed; carries the result to return."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


class JiraChannel:
    """One Jira project. Holds one guarded HTTP client, opened on first send and closed by ``aclose``."""

    kind = kind

    def __init__(self, config: Config, secret: SecretStr | None, outbound: OutboundPolicy) -> None:
        self.config = config
        self.options = config.options
        self.endpoint = config.options.base_url
        self._outbound = outbound
        self._token = secret.get_secret_value().strip() if secret is not None else ""
        self._api = "/rest/api/3" if self.options.flavor == "cloud" else "/rest/api/2"
        self._client: httpx.AsyncClient | None = None

    # -- the one method delivery/ calls -----------------------------------------------------------

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._token:
            return DeliveryResult(
                ok=False, retryable=False, detail="jira channel needs an API token: set secret_ref"
            )
        try:
            return await self._send(notification)
        except _Failed as failed:
            return failed.result
        except httpx.TimeoutException:
            return DeliveryResult(
                ok=False, retryable=True, detail=f"jira timed out after {self.options.timeout_seconds:g}s"
            )
        except OutboundRefused as exc:
            return DeliveryResult(ok=False, retryable=False, detail=self._scrub(str(exc))[:_DETAIL_MAX])
        except httpx.HTTPError as exc:
            return DeliveryResult(
                ok=False, retryable=True, detail=self._scrub(f"jira connection failed: {type(exc).__name__}")
            )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- steps ------------------------------------------------------------------------------------

    async def _send(self, notification: Notification) -> DeliveryResult:
        key = notification.thread_ref
        recovered = False
        events = {f.event for f in notification.findings}
        if not key:
            key = await self._find(recovery_label(notification.group_key))
            if key is None and events == {"resolved"}:
                # Resolved before any ticket was opened: there is nothing to close, so open nothing.
                return DeliveryResult(ok=True, status_code=200, detail="no ticket to resolve; none created")
            if key is None:
                return await self._create(notification)
            recovered = True
        if events == {"resolved"} and notification.still_open_in_group == 0:
            return await self._transition(key, [self.options.transition_resolve], notification, recovered)
        if "regressed" in events:
            return await self._transition(key, self.options.transition_reopen, notification, recovered, True)
        status = await self._comment(key, notification)
        note = " (ticket recovered by its label)" if recovered else ""
        return DeliveryResult(ok=True, status_code=status, detail=f"commented on {key}{note}", thread_ref=key)

    async def _find(self, label: str) -> str | None:
        jql = f'project = "{self.config.target}" AND labels = "{label}" ORDER BY created ASC'
        path = f"{self._api}/search/jql" if self.options.flavor == "cloud" else f"{self._api}/search"
        data = await self._call("POST", path, {"jql": jql, "fields": ["status"], "maxResults": 1}, "search")
        issues = data.get("issues") if isinstance(data, dict) else None
        if isinstance(issues, list) and issues and isinstance(issues[0], dict) and issues[0].get("key"):
            return str(issues[0]["key"])
        return None

    async def _create(self, notification: Notification) -> DeliveryResult:
        opts = self.options
        top = notification.findings[0].severity.value if notification.findings else "informational"
        fields: dict[str, Any] = {
            "project": {"key": self.config.target},
            "summary": jira_render.summary(notification),
            "issuetype": {"name": opts.issue_type},
            "description": jira_render.body(notification, opts.flavor),
            "labels": [recovery_label(notification.group_key), *opts.labels],
        }
        priorities = opts.priority_map or DEFAULT_PRIORITIES
        if priorities.get(top):
            fields["priority"] = {"name": priorities[top]}
        if opts.components:
            fields["components"] = [{"name": name} for name in opts.components]
        fields.update(opts.custom_fields)
        data = await self._call("POST", f"{self._api}/issue", {"fields": fields}, "create issue")
        key = data.get("key") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            return DeliveryResult(
                ok=False, retryable=True, status_code=201, detail="jira created no issue key"
            )
        return DeliveryResult(ok=True, status_code=201, detail=f"created {key}", thread_ref=key)

    async def _transition(
        self,
        key: str,
        names: list[str],
        notification: Notification,
        recovered: bool,
        comment: bool = False,
    ) -> DeliveryResult:
        data = await self._call("GET", f"{self._api}/issue/{key}/transitions", None, "list transitions")
        available = data.get("transitions") if isinstance(data, dict) else None
        by_name: dict[str, str] = {}
        for item in available if isinstance(available, list) else []:
            if isinstance(item, dict) and item.get("id") is not None:
                by_name.setdefault(str(item.get("name", "")).casefold(), str(item["id"]))
                target = item.get("to")
                if isinstance(target, dict) and target.get("name"):
                    by_name.setdefault(str(target["name"]).casefold(), str(item["id"]))
        chosen = next(((n, by_name[n.casefold()]) for n in names if n.casefold() in by_name), None)
        suffix = " (ticket recovered by its label)" if recovered else ""
        if chosen is None:
            status = await self._comment(key, notification)
            wanted = " / ".join(repr(n) for n in names)
            return DeliveryResult(
                ok=True,
                status_code=status,
                detail=f"no transition {wanted} available on {key}; commented instead{suffix}"[:_DETAIL_MAX],
                thread_ref=key,
            )
        name, transition_id = chosen
        await self._call(
            "POST",
            f"{self._api}/issue/{key}/transitions",
            {"transition": {"id": transition_id}},
            "transition",
        )
        detail = f"applied transition {name!r} to {key}"
        if comment:
            await self._comment(key, notification)
            detail += " and commented"
        return DeliveryResult(ok=True, status_code=204, detail=detail + suffix, thread_ref=key)

    async def _comment(self, key: str, notification: Notification) -> int:
        body = jira_render.body(notification, self.options.flavor, jira_render.comment_verb(notification))
        await self._call("POST", f"{self._api}/issue/{key}/comment", {"body": body}, "comment")
        return 201

    # -- HTTP -------------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            if self.options.user:
                pair = f"{self.options.user}:{self._token}".encode()
                auth = "Basic " + base64.b64encode(pair).decode()
            else:
                auth = f"Bearer {self._token}"
            self._client = guarded_client(
                self._outbound,
                base_url=self.endpoint.rstrip("/"),
                timeout=self.options.timeout_seconds,
                headers={"Authorization": auth, "Accept": "application/json", "User-Agent": "tocsin"},
            )
        return self._client

    async def _call(self, method: str, path: str, body: Any, what: str) -> Any:
        response = await self._http().request(method, path, json=body)
        if response.is_success:
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                return {}
        raise _Failed(self._failure(response, what))

    def _failure(self, response: httpx.Response, what: str) -> DeliveryResult:
        status = response.status_code
        retryable = status == 429 or status >= 500
        retry_after = _retry_after(response.headers.get("Retry-After")) if retryable else None
        if status in (401, 403):
            detail = f"jira {what}: HTTP {status}, the credentials were refused (check user and API token)"
        else:
            detail = f"jira {what}: HTTP {status}"
            if status == 404:
                detail += " (project, issue or path not found)"
            if retry_after is not None:
                detail += f", retry after {retry_after:g}s"
            errors = _jira_errors(response)
            if errors:
                detail += f": {errors}"
        return DeliveryResult(
            ok=False,
            retryable=retryable,
            status_code=status,
            detail=self._scrub(detail)[:_DETAIL_MAX],
            retry_after_seconds=retry_after,
        )

    def _scrub(self, text: str) -> str:
        if not self._token:
            return text
        text = text.replace(self._token, "***")
        if self.options.user:
            pair = base64.b64encode(f"{self.options.user}:{self._token}".encode()).decode()
            text = text.replace(pair, "***")
        return text


def _jira_errors(response: httpx.Response) -> str:
    """Jira's ``{"errorMessages": [...], "errors": {"field": "message"}}``, as one line."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    messages = data.get("errorMessages")
    if isinstance(messages, list):
        parts += [str(m)[:160] for m in messages if m]
    errors = data.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {str(message)[:160]}" for field, message in errors.items()]
    return "; ".join(parts)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)
