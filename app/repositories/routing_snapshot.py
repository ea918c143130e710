"""Load the routing configuration in one short read: the rows ``app.pipeline.routing_table`` turns into the
``RoutingTable`` the pure route stage runs on.

Four SELECTs per batch (teams, channels, rules in order, silences not yet ended), whatever the number of
findings; nothing is cached between batches, so a rule changed through the API applies to the next batch
on every replica.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models.findings import FindingEvent
from app.models.notifications import Notification
from app.models.routing import NotificationChannel, RoutingRule, Silence, Team

channels_t = NotificationChannel.__table__  # type: ignore[attr-defined]
notifications_t = Notification.__table__  # type: ignore[attr-defined]
events_t = FindingEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RoutingRows:
    teams: Sequence[Team]
    channels: Sequence[NotificationChannel]
    rules: Sequence[RoutingRule]
    silences: Sequence[Silence]


def load_routing_rows(session: Session, now: datetime) -> RoutingRows:
    """Teams, channels, every rule (disabled ones too, so explain can show them) ordered by position,
    and the silences active at ``now`` or starting later."""
    teams = session.scalars(select(Team).order_by(Team.name)).all()
    channels = session.scalars(select(NotificationChannel).order_by(NotificationChannel.name)).all()
    rules = session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.name)).all()  # type: ignore[arg-type]
    silences = session.scalars(
        select(Silence).where(Silence.ends_at > now).order_by(Silence.ends_at)  # type: ignore[arg-type]
    ).all()
    return RoutingRows(teams, channels, rules, silences)


def notification_history(session: Session, finding_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The finding's notifications, newest first: channel name (the id when the channel is gone), event,
    status, sent_at, due_at, held_reason."""
    stmt = (
        select(
            func.coalesce(channels_t.c.name, notifications_t.c.channel_id).label("channel"),
            notifications_t.c.event,
            notifications_t.c.status,
            notifications_t.c.sent_at,
            notifications_t.c.due_at,
            notifications_t.c.held_reason,
        )
        .select_from(notifications_t.outerjoin(channels_t, channels_t.c.id == notifications_t.c.channel_id))
        .where(notifications_t.c.finding_id == finding_id)
        .order_by(notifications_t.c.created_at.desc(), notifications_t.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def last_event_kind(session: Session, finding_id: str, kinds: Collection[str]) -> str | None:
    """The kind of the finding's latest lifecycle event among ``kinds``."""
    stmt = (
        select(events_t.c.kind)
        .where(events_t.c.finding_id == finding_id, events_t.c.kind.in_(list(kinds)))
        .order_by(events_t.c.at.desc(), events_t.c.id.desc())
        .limit(1)
    )
    kind: str | None = session.execute(stmt).scalar()
    return kind
