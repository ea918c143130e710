"""SQL for triage: lock one finding, change its status, record the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from app.repositories.dialect import lock_rows
from app.repositories.findings import events_t, findings_t


def lock_finding(session: Session, finding_id: str) -> Row[Any] | None:
    stmt = lock_rows(
        session,
        select(
            findings_t.c.id, findings_t.c.status, findings_t.c.status_note, findings_t.c.suppressed_until
        ).where(findings_t.c.id == finding_id),
    )
    return session.execute(stmt).first()


def set_status(
    session: Session,
    finding_id: str,
    status: str,
    note: str | None,
    suppressed_until: datetime | None,
    now: datetime,
) -> None:
    session.execute(
        update(findings_t)
        .where(findings_t.c.id == finding_id)
        .values(status=status, status_note=note, suppressed_until=suppressed_until, updated_at=now)
    )


def add_event(session: Session, event: dict[str, Any]) -> None:
    session.execute(events_t.insert().values(**event))


def reopen_expired_suppressions(session: Session, now: datetime, actor: str) -> list[str]:
    """Reopen every finding whose suppression has ended; one UPDATE, one bulk event insert.

    Safe on several replicas at once: the WHERE clause is re-checked after a concurrent update commits,
    so each finding is reopened (and its event written) exactly once.
    """
    stmt = (
        update(findings_t)
        .where(findings_t.c.status == "suppressed", findings_t.c.suppressed_until <= now)
        .values(status="open", status_note="suppression expired", suppressed_until=None, updated_at=now)
        .returning(findings_t.c.id)
    )
    ids = [row[0] for row in session.execute(stmt)]
    if ids:
        session.execute(
            events_t.insert(),
            [
                {
                    "finding_id": fid,
                    "kind": "suppression_expired",
                    "actor": actor,
                    "at": now,
                    "from_status": "suppressed",
                    "to_status": "open",
                    "note": "suppression expired",
                }
                for fid in ids
            ],
        )
    return ids
