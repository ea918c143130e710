"""/v1/audit: the append-only record of who changed what (admin only; no write endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import AdminCaller, ReadSessionDep
from app.api.docs import error_responses
from app.repositories import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_before_id: int | None


@router.get(
    "",
    summary="Search the audit log",
    description="Newest first. Page backwards with `before_id`. Needs `admin`.",
    response_model=AuditPage,
    responses=error_responses(401, 403, 422),
)
def list_audit(
    caller: AdminCaller,
    session: ReadSessionDep,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64, examples=["finding.triage"])] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    rows = audit.search(
        session,
        actor=actor,
        action=action,
        target_id=target_id,
        since=since,
        before_id=before_id,
        limit=limit + 1,
    )
    items = [AuditOut.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)
