"""SQL for the routing configuration: teams, channels, ordered ownership rules and silences.

Reads and row-level writes only; the checks that span rows (references, one default team, rule order) and
the audit trail live in ``app.routing_config``, which both the API and ``tocsin apply`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from app.models import NotificationChannel, RoutingRule, Silence, Team

SilenceState = Literal["pending", "active", "expired"]


def add(session: Session, row: SQLModel) -> None:
    session.add(row)
    session.flush()


def remove(session: Session, row: SQLModel) -> None:
    session.delete(row)
    session.flush()


# Teams


def teams(session: Session) -> Sequence[Team]:
    return session.execute(select(Team).order_by(Team.name)).scalars().all()


def team_by_name(session: Session, name: str) -> Team | None:
    return session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()  # type: ignore[arg-type]


def team_names_by_id(session: Session) -> dict[str, str]:
    rows = session.execute(select(Team.id, Team.name))  # type: ignore[call-overload]
    return {team_id: name for team_id, name in rows}


def default_teams(session: Session) -> Sequence[Team]:
    return session.execute(select(Team).where(Team.is_default.is_(True))).scalars().all()  # type: ignore[attr-defined]


# Channels


def channels(session: Session, team_id: str | None = None) -> Sequence[NotificationChannel]:
    stmt = select(NotificationChannel).order_by(NotificationChannel.name)
    if team_id is not None:
        stmt = stmt.where(NotificationChannel.team_id == team_id)  # type: ignore[arg-type]
    return session.execute(stmt).scalars().all()


def channel_by_name(session: Session, name: str) -> NotificationChannel | None:
    stmt = select(NotificationChannel).where(NotificationChannel.name == name)  # type: ignore[arg-type]
    return session.execute(stmt).scalar_one_or_none()


# Rules (positions are kept 0..n-1 with no gaps)


def rules(session: Session) -> Sequence[RoutingRule]:
    stmt = select(RoutingRule).order_by(RoutingRule.position, RoutingRule.name)  # type: ignore[arg-type]
    return session.execute(stmt).scalars().all()


def rule_by_name(session: Session, name: str) -> RoutingRule | None:
    stmt = select(RoutingRule).where(RoutingRule.name == name)  # type: ignore[arg-type]
    return session.execute(stmt).scalar_one_or_none()


def rule_names_for_team(session: Session, team: str) -> list[str]:
    stmt = select(RoutingRule.name).where(RoutingRule.team == team).order_by(RoutingRule.position)  # type: ignore[call-overload]
    return list(session.execute(stmt).scalars())


def rule_count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(RoutingRule)).scalar_one())


def shift_rules(session: Session, from_position: int, by: int) -> None:
    """Move every rule at or after ``from_position`` by ``by`` places (to open or close a gap)."""
    session.execute(
        update(RoutingRule)
        .where(RoutingRule.position >= from_position)  # type: ignore[arg-type]
        .values(position=RoutingRule.position + by)
    )


def set_rule_positions(session: Session, names: Sequence[str]) -> None:
    for position, name in enumerate(names):
        session.execute(
            update(RoutingRule).where(RoutingRule.name == name).values(position=position)  # type: ignore[arg-type]
        )
    session.expire_all()


def delete_rule(session: Session, rule: RoutingRule) -> None:
    position = rule.position
    session.execute(delete(RoutingRule).where(RoutingRule.id == rule.id))  # type: ignore[arg-type]
    shift_rules(session, position + 1, -1)
    session.expire_all()


# Silences


def silence_state(silence: Silence, now: datetime) -> SilenceState:
    """Alertmanager's states: pending before ``starts_at``, expired from ``ends_at`` on, active between."""
    if silence.ends_at <= now:
        return "expired"
    if silence.starts_at > now:
        return "pending"
    return "active"


def silences(session: Session, now: datetime, state: SilenceState | None = None) -> Sequence[Silence]:
    stmt = select(Silence)
    if state == "expired":
        stmt = stmt.where(Silence.ends_at <= now)  # type: ignore[arg-type]
    elif state == "pending":
        stmt = stmt.where(Silence.starts_at > now, Silence.ends_at > now)  # type: ignore[arg-type]
    elif state == "active":
        stmt = stmt.where(Silence.starts_at <= now, Silence.ends_at > now)  # type: ignore[arg-type]
    stmt = stmt.order_by(Silence.ends_at.desc(), Silence.id)  # type: ignore[attr-defined]
    return session.execute(stmt).scalars().all()


def silence_by_id(session: Session, silence_id: str) -> Silence | None:
    return session.get(Silence, silence_id)
