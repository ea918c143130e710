"""Read-side SQL for findings: filtered, keyset-paginated lists, one finding with its history, stats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app.repositories.dialect import dialect_name
from app.repositories.findings import aliases_t, events_t, findings_t

SORTABLE = {
    "score": findings_t.c.score,
    "last_seen": findings_t.c.last_seen,
    "first_seen": findings_t.c.first_seen,
}

SUMMARY_COLUMNS = (
    findings_t.c.id,
    findings_t.c.source,
    findings_t.c.source_id,
    findings_t.c.type,
    findings_t.c.title,
    findings_t.c.severity,
    findings_t.c.severity_label,
    findings_t.c.score,
    findings_t.c.status,
    findings_t.c.resource_type,
    findings_t.c.resource_id,
    findings_t.c.account_id,
    findings_t.c.region,
    findings_t.c.tags,
    findings_t.c.public,
    findings_t.c.repository,
    findings_t.c.path,
    findings_t.c.line,
    findings_t.c.occurrences,
    findings_t.c.first_seen,
    findings_t.c.last_seen,
    findings_t.c.team,
    findings_t.c.routed_by,
)


@dataclass(slots=True)
class FindingFilter:
    statuses: list[str] = field(default_factory=list)
    severity_min: float | None = None
    sources: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    account_ids: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    resource_id: str | None = None
    tags: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    since: datetime | None = None


@dataclass(slots=True)
class Page:
    sort_field: str
    descending: bool
    limit: int
    after: tuple[Any, str] | None = None  # (sort value, id) of the last item of the previous page


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(session: Session, flt: FindingFilter) -> list[Any]:
    c = findings_t.c
    conds: list[Any] = []
    if flt.statuses:
        conds.append(c.status.in_(flt.statuses))
    if flt.severity_min is not None:
        conds.append(c.severity >= flt.severity_min)
    if flt.sources:
        conds.append(c.source.in_(flt.sources))
    if flt.types:
        conds.append(c.type.in_(flt.types))
    if flt.account_ids:
        conds.append(c.account_id.in_(flt.account_ids))
    if flt.teams:
        conds.append(c.team.in_(flt.teams))
    if flt.resource_id:
        conds.append(c.resource_id == flt.resource_id)
    if flt.since is not None:
        conds.append(c.last_seen >= flt.since)
    if flt.text:
        conds.append(c.title.ilike(f"%{_escape_like(flt.text)}%", escape="\\"))
    postgres = dialect_name(session) == "postgresql"
    for key, value in flt.tags:
        if postgres:
            conds.append(type_coerce(c.tags, JSONB).contains({key: value}))
        else:
            conds.append(c.tags[key].as_string() == value)
    return conds


def list_findings(session: Session, flt: FindingFilter, page: Page) -> Sequence[Any]:
    """One page of summaries, ordered by (sort field, id); ``limit + 1`` rows tell whether more follow."""
    column = SORTABLE[page.sort_field]
    stmt = select(*SUMMARY_COLUMNS).where(*_conditions(session, flt))
    if page.after is not None:
        key = tuple_(column, findings_t.c.id)
        stmt = stmt.where(key < tuple_(*page.after) if page.descending else key > tuple_(*page.after))
    if page.descending:
        stmt = stmt.order_by(column.desc(), findings_t.c.id.desc())
    else:
        stmt = stmt.order_by(column.asc(), findings_t.c.id.asc())
    return session.execute(stmt.limit(page.limit + 1)).all()


def get_finding(session: Session, finding_id: str) -> Row[Any] | None:
    return session.execute(select(findings_t).where(findings_t.c.id == finding_id)).first()


def get_aliases(session: Session, finding_id: str) -> list[str]:
    rows = session.execute(
        select(aliases_t.c.alias).where(aliases_t.c.finding_id == finding_id).order_by(aliases_t.c.id)
    )
    return [row[0] for row in rows]


def get_events(session: Session, finding_id: str, limit: int) -> Sequence[Row[Any]]:
    """The most recent events, newest first."""
    stmt = (
        select(events_t)
        .where(events_t.c.finding_id == finding_id)
        .order_by(events_t.c.id.desc())
        .limit(limit)
    )
    return session.execute(stmt).all()


def count_events(session: Session, finding_id: str) -> int:
    stmt = select(func.count()).select_from(events_t).where(events_t.c.finding_id == finding_id)
    return int(session.execute(stmt).scalar_one())


def stats(session: Session) -> dict[str, dict[str, int]]:
    """Counts by status, severity label and source, in one scan."""
    c = findings_t.c
    stmt = select(c.status, c.severity_label, c.source, func.count()).group_by(
        c.status, c.severity_label, c.source
    )
    out: dict[str, dict[str, int]] = {"by_status": {}, "by_severity": {}, "by_source": {}}
    for status, label, source, count in session.execute(stmt):
        for bucket, key in (("by_status", status), ("by_severity", label), ("by_source", source)):
            out[bucket][key] = out[bucket].get(key, 0) + int(count)
    return out
