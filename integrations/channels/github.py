"""GitHub Issues: one issue per group, created once, commented on repeats, closed on resolution, reopened
on regression — through the REST API with a token (GitHub.com or GitHub Enterprise ``/api/v3``).

The issue number is the group's ``thread_ref``. If the store loses it, the issue is found again by its
recovery label ``tocsin-<12 hex of the group key's SHA-256>`` (one search before creating), so a group never
opens a second issue. What a message does:

- no known issue: search by recovery label, reuse what is found (reopening it unless the message only
  resolves), else create one with the configured labels plus the recovery label;
- ``new``/``escalated``/``reminder`` on a known issue: a comment (``new`` also reopens it: a closed group
  that gains a finding is open again);
- ``regressed``: reopen (``state: open``) and comment;
- every finding ``resolved``: close with ``state_reason: completed``, then a comment saying what resolved.

State changes go first and comments last, so a retried message repeats at most a comment. The token goes in
the Authorization header only; every HTTP call goes through the outbound guard (``_net``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.contracts import DeliveryResult, Notification, OutboundPolicy
from integrations.channels import _github_render as render_md
from integrations.channels._http import http_failure, json_body, parse_config, transport_failure
from integrations.channels._net import check_url, guarded_client

kind = "github"

DEFAULT_BASE_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


class Options(BaseModel):
    """What a user may set on a GitHub channel besides its ``owner/repo`` target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        DEFAULT_BASE_URL, description="API root: https://api.github.com or https://ghe.example.com/api/v3."
    )
    labels: list[str] = Field(default_factory=lambda: ["security"], max_length=20)
    assignees: list[str] = Field(default_factory=list, max_length=10)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    insecure: bool = Field(False, description="Allow plain http (local testing only).")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not label.strip() or len(label) > 50 or "," in label:
                raise ValueError("each label must be 1-50 characters without commas")
        return [label.strip() for label in labels]

    @field_validator("assignees")
    @classmethod
    def _assignees(cls, logins: list[str]) -> list[str]:
        for login in logins:
            if not _LOGIN.match(login.strip()):
                raise ValueError(f"{login[:40]!r} is not a GitHub login")
        return [login.strip() for login in logins]

    @model_validator(mode="after")
    def _url(self) -> Options:
        check_url(self.base_url, allow_http=self.insecure)
        return self


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    options: Options = Field(default_factory=Options)

    @field_validator("target")
    @classmethod
    def _repo(cls, value: str) -> str:
        value = value.strip()
        if not _REPO.match(value) or value.endswith((".git", "/.", "/..")):
            raise ValueError("must be a repository as owner/repo, such as acme/security-findings")
        return value


def parse(target: str, options: Mapping[str, Any]) -> Config:
    return parse_config(kind, Config, Options, target, options)


def validate(target: str, options: Mapping[str, Any]) -> None:
    """What the API calls when a channel is created: no secret needed, raises ValueError naming the field."""
    parse(target, options)


def build(
    target: str, options: Mapping[str, Any], secret: SecretStr | None, outbound: OutboundPolicy | None = None
) -> GitHubChannel:
    return GitHubChannel(parse(target, options), secret, outbound or OutboundPolicy())


def render(notification: Notification) -> dict[str, Any]:
    """What this module would send for ``notification``, for ``/v1/findings/{id}/preview``: the new issue
    (labels less the channel's own) and the comment a later message would add. Pure, no I/O."""
    return {
        "title": render_md.title(notification),
        "body": render_md.issue_body(notification),
        "labels": [recovery_label(notification.group_key)],
        "comment": render_md.comment(notification),
    }


def recovery_label(group_key: str) -> str:
    """The label that finds a group's issue again when its number is lost."""
    return "tocsin-" + hashlib.sha256(group_key.encode()).hexdigest()[:12]


class _Failed(Exception):
    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


class GitHubChannel:
    """One repository's issues. Holds one guarded HTTP client, opened on first send."""

    kind = kind

    def __init__(self, config: Config, secret: SecretStr | None, outbound: OutboundPolicy) -> None:
        self.config = config
        self.endpoint = config.options.base_url.rstrip("/") + "/"
        self._token = secret.get_secret_value().strip() if secret is not None else ""
        self._outbound = outbound
        self._client: httpx.AsyncClient | None = None
        self._repo = config.target

    async def send(self, notification: Notification) -> DeliveryResult:
        if not self._token:
            return DeliveryResult(ok=False, detail="github channel needs a token: set secret_ref")
        try:
            return await self._deliver(notification, _issue_number(notification.thread_ref))
        except _Failed as failed:
            if notification.thread_ref is None or failed.result.status_code not in (404, 410):
                return failed.result
        # The stored issue was deleted or transferred (404/410): find the group's issue again by its
        # recovery label, or open a new one, instead of failing every later message of the group.
        try:
            return await self._deliver(notification, None)
        except _Failed as failed:
            return failed.result

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- the lifecycle -------------------------------------------------------------------------------

    async def _deliver(self, notification: Notification, number: int | None) -> DeliveryResult:
        events = {finding.event for finding in notification.findings}
        only_resolutions = bool(events) and events == {"resolved"}
        resolving = only_resolutions and notification.still_open_in_group == 0
        found_closed = False
        if number is None:
            found = await self._search(recovery_label(notification.group_key))
            if found is None:
                if only_resolutions:
                    return DeliveryResult(ok=True, detail="github: no issue for this group, nothing to close")
                return await self._create(notification)
            number, found_closed = found
        if resolving:
            await self._set_state(number, "closed", "completed")
            await self._comment(number, render_md.comment(notification))
            return DeliveryResult(
                ok=True, status_code=201, detail=f"closed issue #{number}", thread_ref=str(number)
            )
        reopened = bool(events & {"regressed", "new"}) or found_closed
        if reopened:
            await self._set_state(number, "open", "reopened")
        await self._comment(number, render_md.comment(notification))
        verb = "reopened and commented on" if "regressed" in events else "commented on"
        return DeliveryResult(
            ok=True, status_code=201, detail=f"{verb} issue #{number}", thread_ref=str(number)
        )

    async def _search(self, label: str) -> tuple[int, bool] | None:
        """The group's existing issue (the lowest number, an open one first) and whether it is closed."""
        query = f'repo:{self._repo} is:issue label:"{label}"'
        response = await self._call("search issues", "GET", "search/issues", params={"q": query})
        data = json_body(response)
        items = data.get("items") if isinstance(data, dict) else None
        candidates = [
            (item.get("state") != "open", int(item["number"]))
            for item in items or []
            if isinstance(item, dict) and isinstance(item.get("number"), int)
        ]
        if not candidates:
            return None
        closed, number = min(candidates)
        return number, closed

    async def _create(self, notification: Notification) -> DeliveryResult:
        options = self.config.options
        labels = list(dict.fromkeys([*options.labels, recovery_label(notification.group_key)]))
        body: dict[str, Any] = {
            "title": render_md.title(notification),
            "body": render_md.issue_body(notification),
            "labels": labels,
        }
        if options.assignees:
            body["assignees"] = list(options.assignees)
        response = await self._call("create issue", "POST", f"repos/{self._repo}/issues", json=body)
        data = json_body(response)
        number = data.get("number") if isinstance(data, dict) else None
        if not isinstance(number, int):
            return DeliveryResult(
                ok=False,
                retryable=True,
                status_code=response.status_code,
                detail="github: created issue has no number",
            )
        return DeliveryResult(
            ok=True,
            status_code=response.status_code,
            detail=f"created issue #{number}",
            thread_ref=str(number),
        )

    async def _comment(self, number: int, text: str) -> None:
        await self._call(
            "comment", "POST", f"repos/{self._repo}/issues/{number}/comments", json={"body": text}
        )

    async def _set_state(self, number: int, state: str, reason: str) -> None:
        body = {"state": state, "state_reason": reason}
        await self._call(
            f"set issue #{number} {state}", "PATCH", f"repos/{self._repo}/issues/{number}", json=body
        )

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _call(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a failure raises ``_Failed`` with its classification."""
        label = f"github {what}"
        timeout = self.config.options.timeout_seconds
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _Failed(transport_failure(label, exc, timeout=timeout, secrets=[self._token])) from None
        if response.is_success:
            return response
        raise _Failed(self._failure(label, response))

    def _failure(self, label: str, response: httpx.Response) -> DeliveryResult:
        """GitHub rate limits answer 403 or 429: retryable when ``Retry-After`` is sent (secondary limit) or
        ``x-ratelimit-remaining`` is 0 (primary limit, wait until ``x-ratelimit-reset``)."""
        data = json_body(response)
        message = str(data.get("message") or "")[:160] if isinstance(data, dict) else ""
        status = response.status_code
        headers = response.headers
        rate_limited = status == 429 or (
            status == 403 and ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0")
        )
        retryable = rate_limited or status >= 500
        return http_failure(label, response, secrets=[self._token], retryable=retryable, explanation=message)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = guarded_client(
                self._outbound,
                base_url=self.endpoint,
                timeout=self.config.options.timeout_seconds,
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                    "User-Agent": "tocsin",
                },
            )
        return self._client


def _issue_number(thread_ref: str | None) -> int | None:
    if thread_ref and thread_ref.strip().lstrip("#").isdigit():
        return int(thread_ref.strip().lstrip("#"))
    return None
