"""The outbox, send side: load what a worker claimed, and record what each send did.

Loading is a handful of queries per round (groups, their pending notifications, the findings, the
channels, teams and active silences), never one per notification. Recording one group's outcome is one
short transaction: the ``deliveries`` row (the notification log: every attempt, with what the channel
answered), the notifications' new status, the group's thread and timers, and the lease given back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, distinct, func, select, update
from sqlalchemy.orm import Session

from app.models.findings import Finding
from app.models.notifications import Delivery
from app.models.routing import NotificationChannel, Silence, Team
from app.repositories.dialect import in_chunks, is_in, unique
from app.repositories.outbox import (
    DEAD,
    DROPPED,
    GROUPS,
    HELD,
    NOTIFICATIONS,
    PENDING,
    SENT,
    Intent,
    digest_key,
    upsert_groups,
)

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
FINDINGS = Finding.__table__  # type: ignore[attr-defined]
CHANNELS = NotificationChannel.__table__  # type: ignore[attr-defined]
DETAIL_MAX = 1000

_SKIPPED_FINDING_COLUMNS = {"raw", "description", "context", "content_hash"}
FINDING_COLUMNS = tuple(c for c in FINDINGS.c if c.name not in _SKIPPED_FINDING_COLUMNS)


@dataclass
class ClaimedGroup:
    """A claimed group with its pending notifications and channel (rows as plain mappings)."""

    group: dict[str, Any]
    channel: dict[str, Any] | None
    notifications: list[dict[str, Any]] = field(default_factory=list)
    open_findings: int = 0
    """Distinct findings of the group (any notification) still open or acknowledged."""


def load_claimed(
    session: Session, group_ids: Sequence[str]
) -> tuple[list[ClaimedGroup], dict[str, dict[str, Any]]]:
    """The claimed groups (with their pending notifications and channel) and the findings they name."""
    if not group_ids:
        return [], {}
    groups = {
        row["id"]: ClaimedGroup(dict(row), None)
        for row in session.execute(
            select(GROUPS).where(is_in(session, GROUPS.c.id, list(group_ids)))
        ).mappings()
    }
    n = NOTIFICATIONS
    notes = session.execute(
        select(n)
        .where(is_in(session, n.c.group_id, list(groups)), n.c.status == PENDING)
        .order_by(n.c.created_at, n.c.id)
    ).mappings()
    for row in notes:
        groups[row["group_id"]].notifications.append(dict(row))
    channel_ids = unique(g.group["channel_id"] for g in groups.values())
    channels = {
        row["id"]: dict(row)
        for row in session.execute(
            select(CHANNELS).where(is_in(session, CHANNELS.c.id, channel_ids))
        ).mappings()
    }
    for claimed in groups.values():
        claimed.channel = channels.get(claimed.group["channel_id"])
    open_counts = session.execute(
        select(n.c.group_id, func.count(distinct(n.c.finding_id)))
        .select_from(n.join(FINDINGS, FINDINGS.c.id == n.c.finding_id))
        .where(is_in(session, n.c.group_id, list(groups)), FINDINGS.c.status.in_(("open", "acknowledged")))
        .group_by(n.c.group_id)
    )
    for group_id, count in open_counts:
        groups[group_id].open_findings = int(count)
    finding_ids = unique(note["finding_id"] for g in groups.values() for note in g.notifications)
    findings: dict[str, dict[str, Any]] = {}
    for chunk in in_chunks(session, finding_ids):
        query = select(*FINDING_COLUMNS).where(is_in(session, FINDINGS.c.id, list(chunk)))
        findings.update((row["id"], dict(row)) for row in session.execute(query).mappings())
    return list(groups.values()), findings


def teams_and_active_silences(session: Session, now: datetime) -> tuple[Sequence[Team], Sequence[Silence]]:
    """What the send-time checks need: teams (timezone, quiet hours) and the silences active at ``now``."""
    teams = session.execute(select(Team)).scalars().all()
    silences = (
        session.execute(
            select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)  # type: ignore[arg-type]
        )
        .scalars()
        .all()
    )
    return teams, silences


@dataclass(frozen=True, slots=True)
class Hold:
    notification_id: str
    reason: str
    until: datetime
    silence_id: str | None = None
    digest_team: str | None = None
    """Set when quiet hours hold it: it moves into the channel's digest group for that team."""


def apply_decisions(
    session: Session,
    group: dict[str, Any],
    holds: Sequence[Hold],
    drops: Sequence[tuple[str, str]],
    now: datetime,
) -> None:
    """Hold (silenced, quiet hours: moved into the digest group) and drop (no longer relevant)."""
    n = NOTIFICATIONS
    if holds:
        digest_ids: dict[str, str] = {}
        for team in unique(h.digest_team for h in holds if h.digest_team):
            intent = Intent(
                finding_id="",
                channel_id=group["channel_id"],
                team=team,
                event="",
                routed_by=None,
                group_key=digest_key(team),
                group_labels={"team": team, "digest": "quiet hours"},
                group_wait=0.0,
                group_interval=float(group["group_interval"]),
            )
            state = upsert_groups(session, [intent], now)[(group["channel_id"], digest_key(team))]
            digest_ids[team] = state.id
        session.execute(
            update(n)
            .where(n.c.id == bindparam("nid"))
            .values(
                status=HELD,
                held_reason=bindparam("reason"),
                silence_id=bindparam("sid"),
                due_at=bindparam("until"),
                group_id=bindparam("gid"),
            ),
            [
                {
                    "nid": h.notification_id,
                    "reason": h.reason,
                    "sid": h.silence_id,
                    "until": h.until,
                    "gid": digest_ids[h.digest_team] if h.digest_team else group["id"],
                }
                for h in holds
            ],
        )
    if drops:
        session.execute(
            update(n)
            .where(n.c.id == bindparam("nid"))
            .values(status=DROPPED, held_reason=bindparam("reason")),
            [{"nid": nid, "reason": reason} for nid, reason in drops],
        )


def record_delivery(session: Session, row: dict[str, Any]) -> int:
    """Insert one attempt into the notification log; ``detail`` is cut to DETAIL_MAX characters."""
    values = dict(row)
    if values.get("detail"):
        values["detail"] = str(values["detail"])[:DETAIL_MAX]
    delivery_id = session.execute(
        DELIVERIES.insert().values(**values).returning(DELIVERIES.c.id)
    ).scalar_one()
    return int(delivery_id)


def mark_sent(
    session: Session,
    group: dict[str, Any],
    notification_ids: Sequence[str],
    delivery_id: int,
    thread_ref: str | None,
    now: datetime,
    next_due: datetime,
) -> None:
    """Sent: the notifications point at their delivery; the group keeps its thread and restarts its
    interval; pending notifications that arrived meanwhile wait until ``next_due`` (group_interval)."""
    n = NOTIFICATIONS
    session.execute(
        update(n)
        .where(is_in(session, n.c.id, list(notification_ids)))
        .values(status=SENT, sent_at=now, delivery_id=delivery_id, last_attempt_at=now)
    )
    session.execute(
        update(GROUPS)
        .where(GROUPS.c.id == group["id"])
        .values(
            last_sent_at=now,
            thread_ref=thread_ref or group.get("thread_ref"),
            attempts=0,
            first_failed_at=None,
            last_error=None,
            claimed_until=None,
            claimed_by=None,
        )
    )
    session.execute(
        update(n)
        .where(n.c.group_id == group["id"], n.c.status == PENDING, n.c.due_at < next_due)
        .values(due_at=next_due)
    )


def mark_failed(
    session: Session,
    group: dict[str, Any],
    retry: Sequence[str],
    dead: Sequence[str],
    error: str,
    now: datetime,
    retry_at: datetime,
    first_failed_at: datetime | None,
) -> None:
    """A failed attempt: ``retry`` ones are due again at ``retry_at``, ``dead`` ones are given up on.
    The group's failure streak (attempts, first_failed_at) drives backoff and the age limit; it restarts
    when nothing is left to retry."""
    n = NOTIFICATIONS
    error = error[:DETAIL_MAX]
    common = {"attempts": n.c.attempts + 1, "last_error": error, "last_attempt_at": now}
    if retry:
        session.execute(
            update(n).where(is_in(session, n.c.id, list(retry))).values(due_at=retry_at, **common)
        )
    if dead:
        session.execute(update(n).where(is_in(session, n.c.id, list(dead))).values(status=DEAD, **common))
    streak = (
        {"attempts": GROUPS.c.attempts + 1, "first_failed_at": first_failed_at}
        if retry
        else {
            "attempts": 0,
            "first_failed_at": None,
        }
    )
    session.execute(
        update(GROUPS)
        .where(GROUPS.c.id == group["id"])
        .values(last_error=error, claimed_until=None, claimed_by=None, **streak)
    )


def release(session: Session, group_id: str, worker: str) -> None:
    session.execute(
        update(GROUPS)
        .where(GROUPS.c.id == group_id, GROUPS.c.claimed_by == worker)
        .values(claimed_until=None, claimed_by=None)
    )
