"""Append-only writes and filtered reads of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
