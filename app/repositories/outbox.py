"""The outbox, write side: enqueue intents (inside ingest's transaction), claim due groups, release held ones.

Every function here is batch-oriented: a constant number of statements whatever the number of intents or
groups. Claiming is the only place the dialects differ: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any
number of workers take disjoint groups; on SQLite the single writer (``BEGIN IMMEDIATE``) serialises the
claims. The lease (``claimed_until``) is what makes a killed worker's groups come back.

Recording what a send did lives in ``outbox_record``; reading for the API in ``outbox_queries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.clock import new_id
from app.models.notifications import Notification, NotificationGroup
from app.repositories.dialect import dialect_name, in_chunks, insert_for, is_in, unique

GROUPS = NotificationGroup.__table__  # type: ignore[attr-defined]
NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]

PENDING = "pending"
HELD = "held"
SENT = "sent"
DEAD = "dead"
DROPPED = "dropped"
QUEUED = (PENDING, HELD)
DIGEST_PREFIX = "digest:"


@dataclass(frozen=True, slots=True)
class Intent:
    """One reason to tell one channel about one finding, as routing decided it at ingest."""

    finding_id: str
    channel_id: str
    team: str
    event: str
    routed_by: str | None
    group_key: str
    group_labels: dict[str, str]
    group_wait: float
    group_interval: float


@dataclass(frozen=True, slots=True)
class GroupState:
    id: str
    last_sent_at: datetime | None
    earliest_pending: datetime | None


def digest_key(team: str) -> str:
    """The group quiet hours collect a team's held notifications in, per channel."""
    return f"{DIGEST_PREFIX}{team}"


def upsert_groups(
    session: Session, groups: Sequence[Intent], now: datetime
) -> dict[tuple[str, str], GroupState]:
    """Create or refresh the groups of these intents (one statement) and read their state (one query).

    ``group_interval``, labels and team follow the latest enqueue (a policy change applies to old groups).
    Rows are upserted sorted by key so concurrent batches lock them in the same order (no deadlock).
    """
    by_key: dict[tuple[str, str], Intent] = {}
    for intent in groups:
        by_key[(intent.channel_id, intent.group_key)] = intent
    if not by_key:
        return {}
    rows = [
        {
            "id": new_id(),
            "channel_id": channel_id,
            "group_key": group_key,
            "labels": intent.group_labels,
            "team": intent.team,
            "group_interval": intent.group_interval,
            "attempts": 0,
            "created_at": now,
        }
        for (channel_id, group_key), intent in sorted(by_key.items())
    ]
    stmt = insert_for(session, GROUPS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[GROUPS.c.channel_id, GROUPS.c.group_key],
        set_={
            "group_interval": stmt.excluded.group_interval,
            "labels": stmt.excluded.labels,
            "team": stmt.excluded.team,
        },
    )
    session.execute(stmt, rows)
    return group_states(session, list(by_key))


def group_states(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], GroupState]:
    """id, last_sent_at and the earliest pending due_at of each (channel_id, group_key), in one query."""
    wanted = set(keys)
    states: dict[tuple[str, str], GroupState] = {}
    n = NOTIFICATIONS
    for chunk in in_chunks(session, unique(key for _, key in keys)):
        earliest = (
            select(func.min(n.c.due_at))
            .where(n.c.group_id == GROUPS.c.id, n.c.status == PENDING)
            .scalar_subquery()
        )
        query = select(
            GROUPS.c.id, GROUPS.c.channel_id, GROUPS.c.group_key, GROUPS.c.last_sent_at, earliest
        ).where(
            is_in(session, GROUPS.c.group_key, list(chunk)),
            is_in(session, GROUPS.c.channel_id, unique(c for c, _ in keys)),
        )
        for gid, channel_id, group_key, last_sent_at, first_due in session.execute(query):
            if (channel_id, group_key) in wanted:
                states[(channel_id, group_key)] = GroupState(gid, last_sent_at, first_due)
    return states


def due_at_for(intent: Intent, state: GroupState, now: datetime) -> datetime:
    """With pending company: theirs (they go out together); after a send: once group_interval has passed
    since it; in a new group: after group_wait (Alertmanager's timers)."""
    if state.earliest_pending is not None:
        return state.earliest_pending
    if state.last_sent_at is not None:
        return max(now, state.last_sent_at + timedelta(seconds=intent.group_interval))
    return now + timedelta(seconds=intent.group_wait)


def enqueue(session: Session, intents: Sequence[Intent], now: datetime) -> int:
    """Queue intents in the caller's transaction; returns how many notifications were written.

    An intent is skipped when the same (finding, channel, event) is already queued (pending or held), so
    a finding reported again before its message went out is not queued twice. Four statements per batch:
    the group upsert, the group states, the already-queued check, the bulk insert.
    """
    if not intents:
        return 0
    queued = _already_queued(session, unique(i.finding_id for i in intents))
    fresh: list[Intent] = []
    for intent in intents:
        key = (intent.finding_id, intent.channel_id, intent.event)
        if key not in queued:
            queued.add(key)
            fresh.append(intent)
    if not fresh:
        return 0
    states = upsert_groups(session, fresh, now)
    rows = []
    for intent in fresh:
        state = states[(intent.channel_id, intent.group_key)]
        rows.append(
            {
                "id": new_id(),
                "finding_id": intent.finding_id,
                "group_id": state.id,
                "channel_id": intent.channel_id,
                "team": intent.team,
                "event": intent.event,
                "routed_by": intent.routed_by,
                "status": PENDING,
                "due_at": due_at_for(intent, state, now),
                "attempts": 0,
                "created_at": now,
            }
        )
    session.execute(NOTIFICATIONS.insert(), rows)
    return len(rows)


def _already_queued(session: Session, finding_ids: Sequence[str]) -> set[tuple[str, str, str]]:
    n = NOTIFICATIONS
    found: set[tuple[str, str, str]] = set()
    for chunk in in_chunks(session, finding_ids):
        query = select(n.c.finding_id, n.c.channel_id, n.c.event).where(
            is_in(session, n.c.finding_id, list(chunk)), n.c.status.in_(QUEUED)
        )
        found.update((f, c, e) for f, c, e in session.execute(query))
    return found


def _due_group_ids(now: datetime) -> Any:
    n = NOTIFICATIONS
    return select(n.c.group_id).where(n.c.status == PENDING, n.c.due_at <= now)


def anything_due(session: Session, now: datetime) -> bool:
    """A cheap read before a write: is any notification due (pending or held)? Lets idle pollers skip
    the claim transaction (on SQLite, the writer lock)."""
    n = NOTIFICATIONS
    query = select(n.c.id).where(n.c.status.in_(QUEUED), n.c.due_at <= now).limit(1)
    return session.execute(query).first() is not None


def claim_due_groups(
    session: Session, worker: str, now: datetime, lease_seconds: float, limit: int
) -> list[str]:
    """Take up to ``limit`` due groups whose lease is free; returns their ids.

    A group is due when one of its pending notifications is. PostgreSQL: the candidate rows are locked
    ``FOR UPDATE SKIP LOCKED`` so concurrent workers (and ingest transactions touching a group) never
    wait on each other and never take the same group; the lease is re-checked on the locked row.
    """
    g = GROUPS
    free = or_(g.c.claimed_until.is_(None), g.c.claimed_until < now)
    candidates = select(g.c.id).where(g.c.id.in_(_due_group_ids(now)), free).limit(limit)
    if dialect_name(session) == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(g)
        .where(g.c.id.in_(candidates.scalar_subquery()))
        .values(claimed_until=now + timedelta(seconds=lease_seconds), claimed_by=worker)
        .returning(g.c.id)
    )
    return [row[0] for row in session.execute(stmt)]


def release_lease(session: Session, group_ids: Sequence[str], worker: str) -> None:
    """Give groups back unsent (shutdown, or the channel's pace would outlast the lease)."""
    if group_ids:
        session.execute(
            update(GROUPS)
            .where(is_in(session, GROUPS.c.id, list(group_ids)), GROUPS.c.claimed_by == worker)
            .values(claimed_until=None, claimed_by=None)
        )


def release_held(session: Session, now: datetime) -> int:
    """Held notifications whose time came (silence over, quiet hours over) go back to pending; the
    dispatcher evaluates them again at send time and holds them again if they still should be."""
    n = NOTIFICATIONS
    result = session.execute(
        update(n)
        .where(n.c.status == HELD, n.c.due_at <= now)
        .values(status=PENDING, held_reason=None, silence_id=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def release_silence(session: Session, silence_id: str, now: datetime) -> int:
    """A silence ended early (expired through the API): what it held is due now. Called by the silences
    API in the transaction that expires it; returns how many notifications it released."""
    n = NOTIFICATIONS
    result = session.execute(
        update(n).where(n.c.status == HELD, n.c.silence_id == silence_id).values(due_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def requeue_dead(session: Session, notification_id: str, now: datetime) -> bool:
    """``POST /v1/notifications/{id}/retry``: a dead notification is pending again, due now, with a fresh
    count of attempts; its group's failure streak restarts so the age limit does not kill it at once.
    Returns False when it is not dead (nothing changed)."""
    n = NOTIFICATIONS
    group_id = session.execute(
        update(n)
        .where(n.c.id == notification_id, n.c.status == DEAD)
        .values(status=PENDING, due_at=now, attempts=0)
        .returning(n.c.group_id)
    ).scalar_one_or_none()
    if group_id is None:
        return False
    session.execute(update(GROUPS).where(GROUPS.c.id == group_id).values(attempts=0, first_failed_at=None))
    return True


def push_back_pending(session: Session, group_id: str, not_before: datetime) -> None:
    """Pending notifications of a group that arrived while it was being sent wait for group_interval."""
    n = NOTIFICATIONS
    session.execute(
        update(n)
        .where(n.c.group_id == group_id, n.c.status == PENDING, n.c.due_at < not_before)
        .values(due_at=not_before)
    )
