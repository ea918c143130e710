"""Response models of /v1/notifications (tables are not API models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NotificationStatus = Literal["pending", "held", "sent", "dead", "dropped"]

_EXAMPLE: dict[str, Any] = {
    "id": "0193a5c2e4f07a1b2c3d4e5f60718293",
    "finding_id": "0193a5c2d9e87b6a5c4d3e2f10a9b8c7",
    "event": "new",
    "status": "dead",
    "team": "payments",
    "channel": "payments-slack",
    "channel_kind": "slack",
    "group_key": "payments|S3/PublicRead",
    "routed_by": "rule:payments-buckets",
    "attempts": 8,
    "due_at": "2026-03-02T12:40:00Z",
    "created_at": "2026-03-02T12:00:00Z",
    "last_attempt_at": "2026-03-02T12:39:12Z",
    "sent_at": None,
    "last_error": "slack error channel_not_found (HTTP 200)",
    "held_reason": None,
    "silence_id": None,
}

_SCHEMA_EXTRA: dict[str, Any] = {"examples": [_EXAMPLE]}


class NotificationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=_SCHEMA_EXTRA)

    id: str
    finding_id: str
    event: str = Field(description="new, regressed, escalated, resolved or reminder.")
    status: NotificationStatus = Field(
        description="pending (due at due_at with its group), held (silence or quiet hours: held_reason), "
        "sent, dead (gave up: last_error; POST .../retry re-queues it), dropped (no longer relevant)."
    )
    team: str
    channel: str | None = Field(description="The channel's name (null if it was deleted).")
    channel_kind: str | None
    group_key: str
    routed_by: str | None
    attempts: int
    due_at: datetime
    created_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    held_reason: str | None
    silence_id: str | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class DeliveryOut(BaseModel):
    """One attempt to send the group's message (the notification log)."""

    id: int
    message_id: str
    worker: str
    started_at: datetime
    finished_at: datetime | None
    ok: bool
    retryable: bool
    status_code: int | None
    detail: str | None
    finding_count: int
    digest: bool
    thread_ref: str | None
    includes_this: bool = Field(description="This notification was in the message of that attempt.")


class NotificationDetail(NotificationOut):
    deliveries: list[DeliveryOut] = Field(description="The group's attempts, newest first (at most 50).")
