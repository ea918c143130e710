"""/v1/notifications: the outbox as users see it (why was I, or wasn't I, told?) and re-queueing."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import Row

from app.api.deps import AdminCaller, ReadCaller, ReadSessionDep, SessionDep
from app.api.docs import error_responses
from app.api.notification_schemas import DeliveryOut, NotificationDetail, NotificationOut, NotificationPage
from app.clock import utcnow
from app.errors import ConflictError, NotFoundError, ValidationFailed
from app.repositories import outbox, outbox_queries

router = APIRouter(prefix="/v1", tags=["notifications"])

STATUSES = ("pending", "held", "sent", "dead", "dropped")
NotificationId = Annotated[str, Path(max_length=64, description="The notification's id.")]


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error) as exc:
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from exc
    if not value.isalnum():
        raise ValidationFailed("cursor is not one this API returned", field="cursor")
    return value


def _out(row: Row[Any]) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "finding_id": m["finding_id"],
        "event": m["event"],
        "status": m["status"],
        "team": m["team"],
        "channel": m["channel_name"],
        "channel_kind": m["channel_kind"],
        "group_key": m["group_key"],
        "routed_by": m["routed_by"],
        "attempts": m["attempts"],
        "due_at": m["due_at"],
        "created_at": m["created_at"],
        "last_attempt_at": m["last_attempt_at"],
        "sent_at": m["sent_at"],
        "last_error": m["last_error"],
        "held_reason": m["held_reason"],
        "silence_id": m["silence_id"],
    }


@router.get(
    "/notifications",
    summary="List notifications (the outbox)",
    description="Every reason to tell a channel about a finding, newest first, with its status, attempts, "
    "timestamps, last error and why it is held. Filter by status, channel name, finding and team; pages "
    "are keyset-based. Needs `read`.",
    response_model=NotificationPage,
    responses=error_responses(401, 403, 422),
)
def list_notifications(
    caller: ReadCaller,
    session: ReadSessionDep,
    status: Annotated[
        list[str] | None, Query(description=f"{', '.join(STATUSES)} (repeat or comma-separate).")
    ] = None,
    channel: Annotated[
        list[str] | None, Query(description="Channel name (repeat or comma-separate).")
    ] = None,
    finding_id: Annotated[list[str] | None, Query(description="Finding id (repeatable).")] = None,
    team: Annotated[list[str] | None, Query(description="Team name (repeat or comma-separate).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> NotificationPage:
    statuses = _split(status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValidationFailed(f"unknown status {unknown[0]!r}; use {', '.join(STATUSES)}", field="status")
    flt = outbox_queries.NotificationFilter(
        statuses=statuses, channels=_split(channel), finding_ids=_split(finding_id), teams=_split(team)
    )
    rows = outbox_queries.list_notifications(session, flt, limit + 1, _after(cursor))
    items = [NotificationOut(**_out(row)) for row in rows[:limit]]
    next_cursor = _cursor(items[-1].id) if len(rows) > limit else None
    return NotificationPage(items=items, next_cursor=next_cursor)


@router.get(
    "/notifications/{notification_id}",
    summary="Show a notification with its delivery log",
    description="The notification and every attempt to send its group's message (status code, whether it "
    "was retryable, the channel's answer), newest first. Needs `read`.",
    response_model=NotificationDetail,
    responses=error_responses(401, 403, 404, 422),
)
def get_notification(
    notification_id: NotificationId, caller: ReadCaller, session: ReadSessionDep
) -> NotificationDetail:
    row = outbox_queries.get_notification(session, notification_id)
    if row is None:
        raise NotFoundError(f"no notification {notification_id}")
    log = outbox_queries.group_deliveries(session, row._mapping["group_id"])
    deliveries = [
        DeliveryOut(
            **{name: d._mapping[name] for name in DeliveryOut.model_fields if name != "includes_this"},
            includes_this=notification_id in (d._mapping["notification_ids"] or []),
        )
        for d in log
    ]
    return NotificationDetail(**_out(row), deliveries=deliveries)


@router.post(
    "/notifications/{notification_id}/retry",
    summary="Re-queue a dead notification",
    description="A dead notification becomes pending again, due now, with its attempts reset (fix the "
    "channel or its secret first). 409 when it is not dead. Needs `admin`.",
    response_model=NotificationOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def retry_notification(
    notification_id: NotificationId, caller: AdminCaller, session: SessionDep
) -> NotificationOut:
    if not outbox.requeue_dead(session, notification_id, utcnow()):
        row = outbox_queries.get_notification(session, notification_id)
        if row is None:
            raise NotFoundError(f"no notification {notification_id}")
        raise ConflictError(
            f"notification {notification_id} is {row._mapping['status']}, not dead: only dead ones are re-queued"
        )
    session.flush()
    row = outbox_queries.get_notification(session, notification_id)
    assert row is not None
    return NotificationOut(**_out(row))
