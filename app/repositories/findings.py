"""Write-side SQL for findings: batch lookups, inserts, updates, events and aliases.

Every function takes a whole batch and costs one statement (executemany or IN list), never one per
finding. The caller (pipeline.dedupe via pipeline.ingest) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.models import Finding, FindingAlias, FindingEvent
from app.repositories.bulk import bulk_insert, bulk_update
from app.repositories.dialect import in_chunks, is_in, lock_rows, unique

findings_t = Finding.__table__  # type: ignore[attr-defined]
aliases_t = FindingAlias.__table__  # type: ignore[attr-defined]
events_t = FindingEvent.__table__  # type: ignore[attr-defined]


@dataclass(slots=True)
class FindingState:
    """What the lifecycle needs to know of a stored finding."""

    id: str
    fingerprint: str
    status: str
    status_note: str | None
    suppressed_until: datetime | None
    occurrences: int
    content_hash: str
    first_seen: datetime
    last_seen: datetime
    score: float
    scan_scope: str | None
    last_scan_id: str | None
    team: str | None
    routed_by: str | None


_STATE_COLUMNS = (
    findings_t.c.id,
    findings_t.c.fingerprint,
    findings_t.c.status,
    findings_t.c.status_note,
    findings_t.c.suppressed_until,
    findings_t.c.occurrences,
    findings_t.c.content_hash,
    findings_t.c.first_seen,
    findings_t.c.last_seen,
    findings_t.c.score,
    findings_t.c.scan_scope,
    findings_t.c.last_scan_id,
    findings_t.c.team,
    findings_t.c.routed_by,
)


def alias_targets(session: Session, alias_hashes: Sequence[str]) -> dict[str, str]:
    """alias hash -> finding id, for the hashes that are known."""
    found: dict[str, str] = {}
    conn = session.connection()
    for part in in_chunks(session, unique(alias_hashes)):
        rows = conn.execute(
            select(aliases_t.c.alias_hash, aliases_t.c.finding_id).where(
                is_in(session, aliases_t.c.alias_hash, part)
            )
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def lock_states(session: Session, ids: Sequence[str], fingerprints: Sequence[str]) -> list[FindingState]:
    """Load and lock (PostgreSQL: FOR UPDATE, in id order to limit deadlocks) the given findings.

    One statement per batch; SQLite splits very large batches to respect its parameter limit.
    """
    conn = session.connection()
    keys = [("id", value) for value in unique(ids)] + [("fp", value) for value in unique(fingerprints)]
    states: dict[str, FindingState] = {}
    for part in in_chunks(session, keys):
        part_ids = [value for kind, value in part if kind == "id"]
        part_fps = [value for kind, value in part if kind == "fp"]
        conditions = []
        if part_ids:
            conditions.append(is_in(session, findings_t.c.id, part_ids))
        if part_fps:
            conditions.append(is_in(session, findings_t.c.fingerprint, part_fps))
        stmt = lock_rows(session, select(*_STATE_COLUMNS).where(or_(*conditions)).order_by(findings_t.c.id))
        for row in conn.execute(stmt):
            states[row[0]] = FindingState(*row)
    return list(states.values())


def insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert findings, skipping fingerprints that exist; return the fingerprints actually inserted.

    A fingerprint missing from the result was inserted by a concurrent batch after our lookup: the
    caller treats it as a repeat.
    """
    rows = sorted(rows, key=lambda row: row["fingerprint"])
    inserted = bulk_insert(
        session, findings_t, rows, skip_conflicts_on=["fingerprint"], returning="fingerprint"
    )
    return {row["fingerprint"] for row in rows} if inserted is None else set(inserted)


_TOUCH_COLUMNS = (
    "status",
    "status_note",
    "suppressed_until",
    "score",
    "score_breakdown",
    "occurrences",
    "last_seen",
    "observed_at",
    "updated_at",
    "scan_scope",
    "last_scan_id",
)
_CONTENT_COLUMNS = (
    "title",
    "description",
    "severity",
    "severity_label",
    "resource_type",
    "account_id",
    "region",
    "tags",
    "public",
    "repository",
    "path",
    "line",
    "confidence",
    "references",
    "remediation",
    "data_sensitivity",
    "context",
    "raw",
    "source_status",
    "content_hash",
)


def update_seen(session: Session, rows: list[dict[str, Any]]) -> None:
    """Repeats whose content did not change: counters, timestamps, score, status."""
    _update(session, ("id", *_TOUCH_COLUMNS), rows)


def update_content(session: Session, rows: list[dict[str, Any]]) -> None:
    """Repeats whose content changed: everything, the raw document included."""
    _update(session, ("id", *_TOUCH_COLUMNS, *_CONTENT_COLUMNS), rows)


def _update(session: Session, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    ordered = sorted(rows, key=lambda row: row["id"])  # same lock order in every transaction
    bulk_update(session, findings_t, "id", [{name: row[name] for name in columns} for row in ordered])


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    bulk_insert(session, events_t, rows)


def insert_aliases(session: Session, rows: list[dict[str, Any]]) -> None:
    """Record aliases; a key already owned by a finding keeps its owner."""
    ordered = sorted(rows, key=lambda row: row["alias_hash"])
    bulk_insert(session, aliases_t, ordered, skip_conflicts_on=["alias_hash"])


def resolve_absent_from_scan(session: Session, scan_scope: str, scan_id: str, now: datetime) -> list[str]:
    """Resolve the scope's open findings that the complete scan ``scan_id`` did not report; their ids."""
    stmt = (
        update(findings_t)
        .where(
            findings_t.c.scan_scope == scan_scope,
            findings_t.c.status.in_(("open", "acknowledged")),
            or_(findings_t.c.last_scan_id.is_(None), findings_t.c.last_scan_id != scan_id),
        )
        .values(status="resolved", status_note="absent from a complete re-scan", updated_at=now)
        .returning(findings_t.c.id, findings_t.c.status)
    )
    return [row[0] for row in session.execute(stmt)]
