"""Reads the routing stage needs beyond the ingest batch itself: findings resolved by a re-scan, findings
due a reminder, and owner updates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.orm import Session

from app.models import Finding, Notification, NotificationChannel, NotificationGroup
from app.repositories.dialect import is_in

findings_t = Finding.__table__  # type: ignore[attr-defined]
notifications_t = Notification.__table__  # type: ignore[attr-defined]

FACT_COLUMNS = (
    findings_t.c.id,
    findings_t.c.source,
    findings_t.c.type,
    findings_t.c.severity,
    findings_t.c.score,
    findings_t.c.account_id,
    findings_t.c.region,
    findings_t.c.resource_type,
    findings_t.c.resource_id,
    findings_t.c.repository,
    findings_t.c.path,
    findings_t.c.tags,
    findings_t.c.status,
    findings_t.c.team,
)


def rows_for_routing(session: Session, finding_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not finding_ids:
        return []
    rows = session.execute(select(*FACT_COLUMNS).where(is_in(session, findings_t.c.id, list(finding_ids))))
    return [dict(row._mapping) for row in rows]


def reminder_candidates(
    session: Session, team: str, min_severity: float, sent_before: datetime, limit: int
) -> list[dict[str, Any]]:
    """Open findings of ``team`` at or above ``min_severity`` that were notified before, but not since
    ``sent_before``, and have nothing queued: they are due a reminder."""
    n = notifications_t
    notified_before = exists().where(n.c.finding_id == findings_t.c.id, n.c.status == "sent")
    recent_or_queued = exists().where(
        n.c.finding_id == findings_t.c.id,
        (n.c.created_at >= sent_before) | n.c.status.in_(("pending", "held")),
    )
    stmt = (
        select(*FACT_COLUMNS)
        .where(
            and_(
                findings_t.c.team == team,
                findings_t.c.status == "open",
                findings_t.c.severity >= min_severity,
                notified_before,
                ~recent_or_queued,
            )
        )
        .order_by(findings_t.c.score.desc(), findings_t.c.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def set_owners(session: Session, owners: dict[str, tuple[str | None, str | None]]) -> None:
    """Store (team, routed_by) on findings whose owner changed; one executemany."""
    if not owners:
        return

    stmt = (
        update(findings_t)
        .where(findings_t.c.id == bindparam("fid"))
        .values(team=bindparam("new_team"), routed_by=bindparam("new_routed_by"))
    )
    session.connection().execute(
        stmt,
        [{"fid": fid, "new_team": team, "new_routed_by": by} for fid, (team, by) in owners.items()],
    )


def delivered_in(session: Session, finding_id: str) -> list[dict[str, Any]]:
    """The groups (messages / tickets) this finding was sent in: channel, kind, thread ref."""
    g = NotificationGroup.__table__  # type: ignore[attr-defined]
    c = NotificationChannel.__table__  # type: ignore[attr-defined]
    n = notifications_t
    stmt = (
        select(c.c.name.label("channel"), c.c.kind, g.c.thread_ref.label("ref"), g.c.last_sent_at)
        .select_from(g.join(c, c.c.id == g.c.channel_id))
        .where(
            g.c.thread_ref.is_not(None),
            exists().where(n.c.group_id == g.c.id, n.c.finding_id == finding_id, n.c.status == "sent"),
        )
        .order_by(g.c.last_sent_at.desc())
        .limit(50)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def findings_with_ticket(session: Session, kind: str, ticket: str) -> list[tuple[str, dict[str, Any]]]:
    """(finding id, its channel's options) for every finding of a group whose ticket / message reference on
    a channel of ``kind`` is ``ticket`` (a Jira issue key): how a tracker's webhook finds its findings."""
    g = NotificationGroup.__table__  # type: ignore[attr-defined]
    c = NotificationChannel.__table__  # type: ignore[attr-defined]
    n = notifications_t
    rows = session.execute(
        select(n.c.finding_id, c.c.options)
        .select_from(g.join(c, c.c.id == g.c.channel_id).join(n, n.c.group_id == g.c.id))
        .where(c.c.kind == kind, g.c.thread_ref == ticket)
        .order_by(n.c.finding_id)
    )
    found: dict[str, dict[str, Any]] = {}
    for finding_id, options in rows:
        found.setdefault(str(finding_id), dict(options or {}))
    return list(found.items())
