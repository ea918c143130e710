"""/v1/jira/webhook: back-sync from Jira tickets to the findings they track.

A Jira channel keeps each group's ticket key in ``notification_groups.thread_ref``. When a person moves
a ticket to a status of the ``done`` category, its findings become ``resolved`` (or ``false_positive`` /
``suppressed`` by the channel's ``resolution_map`` on the Jira resolution name); moving it back out of
``done`` reopens them. Every change goes through the same triage code as ``PATCH /v1/findings/{id}`` and
lands in the audit log as ``jira:<accountId>``.

Jira retries a webhook that fails, so the endpoint answers 200 for anything it cannot use (an unknown
key, another event) and is idempotent: a finding already in the target status is left alone, which also
makes the echo of Tocsin's own transitions harmless. Authenticated by a shared secret (Jira Cloud
webhooks cannot sign), compared in constant time; wrong or missing answers 401 before the body is read.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel

from app.api.deps import RequestIdDep, SessionDep, SettingsDep
from app.api.docs import error_responses
from app.clock import utcnow
from app.errors import AppError, ConflictError, ValidationFailed
from app.pipeline import triage
from app.repositories import audit, routing_facts
from app.repositories import triage as triage_repo

router = APIRouter(prefix="/v1", tags=["jira"])

MAX_BODY = 1_048_576
REOPENABLE = frozenset({"resolved", "false_positive"})
CLOSING = frozenset({"resolved", "false_positive", "suppressed"})


class JiraWebhookResult(BaseModel):
    matched: int
    """Findings tracked by the ticket."""
    changed: int = 0
    """Findings whose status this call changed."""
    ignored: str | None = None


class WebhookUnauthorized(AppError):
    """401 without the Bearer challenge: this endpoint takes a shared secret, not a token."""

    status_code = 401
    code = "unauthorized"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def read_body(request: Request) -> bytes:
    return await request.body()


def _check_secret(settings: Any, presented: str | None) -> None:
    expected = settings.jira_webhook_secret
    if expected is None:
        raise WebhookUnauthorized("the Jira webhook is not configured: set TOCSIN_JIRA_WEBHOOK_SECRET")
    value = expected.get_secret_value().encode()
    if not presented or not hmac.compare_digest(presented.encode(), value):
        raise WebhookUnauthorized(
            "missing or wrong Jira webhook secret (?secret= or X-Tocsin-Webhook-Secret)"
        )


@router.post(
    "/jira/webhook",
    summary="Jira back-sync webhook",
    description="Point a Jira webhook (event: issue updated) here with `?secret=` or the "
    "`X-Tocsin-Webhook-Secret` header. A ticket moved to a done status resolves its findings (or marks "
    "them false positive / suppressed by the channel's `resolution_map`); moved out of done, it reopens "
    "them. Unknown tickets answer 200 with `matched: 0`.",
    response_model=JiraWebhookResult,
    responses=error_responses(401, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def jira_webhook(
    settings: SettingsDep,
    session: SessionDep,
    request_id: RequestIdDep,
    body: Annotated[bytes, Depends(read_body)],
    secret: Annotated[str | None, Query(description="The shared webhook secret.")] = None,
    x_tocsin_webhook_secret: Annotated[str | None, Header()] = None,
) -> JiraWebhookResult:
    _check_secret(settings, x_tocsin_webhook_secret or secret)
    if len(body) > MAX_BODY:
        raise ValidationFailed("the webhook body is too large")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationFailed("the webhook body must be JSON") from None
    if not isinstance(payload, dict):
        raise ValidationFailed("the webhook body must be a JSON object")
    event = payload.get("webhookEvent")
    if event != "jira:issue_updated":
        return JiraWebhookResult(matched=0, ignored=f"event {str(event)[:60]!r} is not jira:issue_updated")
    issue = _obj(payload.get("issue"))
    key = issue.get("key")
    fields = _obj(issue.get("fields"))
    status = _obj(fields.get("status"))
    category = _obj(status.get("statusCategory"))
    if not isinstance(key, str) or not key:
        return JiraWebhookResult(matched=0, ignored="no issue key")
    tracked = routing_facts.findings_with_ticket(session, "jira", key)
    if not tracked:
        return JiraWebhookResult(matched=0)
    done = category.get("key") == "done"
    resolution = _obj(fields.get("resolution"))
    resolution_name = str(resolution.get("name") or "")
    user = _obj(payload.get("user"))
    who = str(user.get("accountId") or user.get("name") or user.get("key") or "unknown")[:100]
    display = str(user.get("displayName") or who)[:100]
    what = f"moved to {status.get('name') or category.get('key')}"
    if done and resolution_name:
        what += f" (resolution {resolution_name})"
    note = f"Jira {key} {what} by {display}"[:1000]
    now = utcnow()
    changed = 0
    for finding_id, options in tracked:
        current = triage_repo.lock_finding(session, finding_id)
        if current is None:
            continue
        if done:
            mapping = options.get("resolution_map") or {}
            target = (
                str(mapping.get(resolution_name, "resolved")) if isinstance(mapping, dict) else "resolved"
            )
            if target not in CLOSING or current.status in CLOSING:
                continue
        elif current.status in REOPENABLE:
            target = "open"
        else:
            continue
        until = None
        if target == "suppressed":
            until = now + timedelta(days=int(options.get("suppress_days") or 30))
        try:
            change = triage.change_status(session, finding_id, target, note, until, f"jira:{who}", now)
        except ConflictError:
            continue
        audit.record(
            session,
            actor=f"jira:{who}",
            action="finding.triage",
            target_type="finding",
            target_id=finding_id,
            before=change.before,
            after=change.after,
            request_id=request_id,
            at=now,
        )
        changed += 1
    return JiraWebhookResult(matched=len(tracked), changed=changed)
