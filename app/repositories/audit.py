"""Append-only writes and filtered reads of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditRecord


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    request_id: str | None,
    at: datetime,
) -> None:
    session.add(
        AuditRecord(
            at=at,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=before,
            after=after,
            request_id=request_id,
        )
    )
    session.flush()


def search(
    session: Session,
    *,
    actor: str | None,
    action: str | None,
    target_id: str | None,
    since: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRecord]:
    """Newest first; ``before_id`` pages backwards."""
    stmt = select(AuditRecord)
    if actor:
        stmt = stmt.where(AuditRecord.actor == actor)  # type: ignore[arg-type]
    if action:
        stmt = stmt.where(AuditRecord.action == action)  # type: ignore[arg-type]
    if target_id:
        stmt = stmt.where(AuditRecord.target_id == target_id)  # type: ignore[arg-type]
    if since:
        stmt = stmt.where(AuditRecord.at >= since)  # type: ignore[arg-type]
    if before_id:
        stmt = stmt.where(AuditRecord.id < before_id)  # type: ignore[arg-type,operator]
    stmt = stmt.order_by(AuditRecord.id.desc()).limit(limit)  # type: ignore[union-attr]
    return list(session.execute(stmt).scalars())
