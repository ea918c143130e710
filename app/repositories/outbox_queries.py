"""The outbox, read side for the API: notifications with filters and keyset pages, one with its log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app.repositories.outbox import GROUPS, NOTIFICATIONS
from app.repositories.outbox_sends import CHANNELS, DELIVERIES

DELIVERIES_SHOWN = 50


@dataclass(frozen=True)
class NotificationFilter:
    statuses: Sequence[str] = ()
    channels: Sequence[str] = ()
    """Channel names."""
    finding_ids: Sequence[str] = ()
    teams: Sequence[str] = ()


def _base() -> Any:
    n, g, c = NOTIFICATIONS, GROUPS, CHANNELS
    return (
        select(n, c.c.name.label("channel_name"), c.c.kind.label("channel_kind"), g.c.group_key)
        .join(g, g.c.id == n.c.group_id)
        .join(c, c.c.id == n.c.channel_id, isouter=True)
    )


def list_notifications(
    session: Session, flt: NotificationFilter, limit: int, after_id: str | None
) -> list[Row[Any]]:
    """Newest first (ids sort by creation time), ``limit`` rows after the cursor's id."""
    n, c = NOTIFICATIONS, CHANNELS
    query = _base()
    if flt.statuses:
        query = query.where(n.c.status.in_(list(flt.statuses)))
    if flt.channels:
        query = query.where(c.c.name.in_(list(flt.channels)))
    if flt.finding_ids:
        query = query.where(n.c.finding_id.in_(list(flt.finding_ids)))
    if flt.teams:
        query = query.where(n.c.team.in_(list(flt.teams)))
    if after_id is not None:
        query = query.where(n.c.id < after_id)
    return list(session.execute(query.order_by(n.c.id.desc()).limit(limit)))


def get_notification(session: Session, notification_id: str) -> Row[Any] | None:
    return session.execute(_base().where(NOTIFICATIONS.c.id == notification_id)).first()


def group_deliveries(session: Session, group_id: str, limit: int = DELIVERIES_SHOWN) -> list[Row[Any]]:
    """The notification log of a group, newest attempt first."""
    d = DELIVERIES
    query = select(d).where(d.c.group_id == group_id).order_by(d.c.id.desc()).limit(limit)
    return list(session.execute(query))
