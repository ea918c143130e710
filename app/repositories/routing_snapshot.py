"""Load the routing configuration in one short read: the ``RoutingTable`` the pure route stage runs on.

Four SELECTs per batch (teams, channels, rules in order, silences not yet ended), whatever the number of
findings; nothing is cached between batches, so a rule changed through the API applies to the next batch
on every replica.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.routing import NotificationChannel, RoutingRule, Silence, Team
from app.pipeline.route import RoutingTable


def load_routing_table(session: Session, now: datetime) -> RoutingTable:
    """Teams, channels, every rule (disabled ones too, so explain can show them) ordered by position,
    and the silences active at ``now`` or starting later."""
    teams = session.scalars(select(Team).order_by(Team.name)).all()
    channels = session.scalars(select(NotificationChannel).order_by(NotificationChannel.name)).all()
    rules = session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.name)).all()  # type: ignore[arg-type]
    silences = session.scalars(
        select(Silence).where(Silence.ends_at > now).order_by(Silence.ends_at)  # type: ignore[arg-type]
    ).all()
    return RoutingTable.from_rows(teams, channels, rules, silences)
