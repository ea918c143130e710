"""Findings, the keys they were reported under (aliases), and their history (events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel

from app.models.types import BigIntId, JSONDocument, JSONType, UTCDateTime


class Finding(SQLModel, table=True):
    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_status_score", "status", "score", "id"),
        Index("ix_findings_score", "score", "id"),
        Index("ix_findings_last_seen", "last_seen", "id"),
        Index("ix_findings_first_seen", "first_seen", "id"),
        Index("ix_findings_scan_scope", "scan_scope", "status"),
        Index("ix_findings_team_status", "team", "status", "score"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    source: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    source_id: str | None = Field(default=None, sa_column=Column(Text))
    type: str = Field(sa_column=Column(String(512), nullable=False, index=True))
    title: str = Field(sa_column=Column(String(512), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    severity: float = Field(nullable=False, index=True)
    severity_label: str = Field(sa_column=Column(String(16), nullable=False))
    resource_type: str | None = Field(default=None, sa_column=Column(String(256)))
    resource_id: str | None = Field(default=None, sa_column=Column(Text, index=True))
    account_id: str | None = Field(default=None, sa_column=Column(String(128), index=True))
    region: str | None = Field(default=None, sa_column=Column(String(64)))
    tags: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    public: bool = Field(default=False, nullable=False)
    repository: str | None = Field(default=None, sa_column=Column(Text))
    path: str | None = Field(default=None, sa_column=Column(Text))
    line: int | None = Field(default=None)
    confidence: int | None = Field(default=None)
    references: list[str] = Field(default_factory=list, sa_column=Column(JSONDocument, nullable=False))
    remediation: str | None = Field(default=None, sa_column=Column(Text))
    data_sensitivity: str | None = Field(default=None, sa_column=Column(String(16)))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDocument, nullable=False))
    raw: Any = Field(default=None, sa_column=Column(JSONDocument))
    source_status: str | None = Field(default=None, sa_column=Column(String(16)))
    content_hash: str = Field(sa_column=Column(String(32), nullable=False))
    # "<format>|<scope>" of the last report that carried it, and that report's scan id: a complete
    # re-scan of the scope resolves what it no longer reports.
    scan_scope: str | None = Field(default=None, sa_column=Column(String(320)))
    last_scan_id: str | None = Field(default=None, sa_column=Column(String(32)))
    # The owning team and the rule that chose it ("rule:<name>", "tag:<key>", "default"), set at ingest.
    team: str | None = Field(default=None, sa_column=Column(String(64)))
    routed_by: str | None = Field(default=None, sa_column=Column(String(80)))

    status: str = Field(sa_column=Column(String(16), nullable=False))
    status_note: str | None = Field(default=None, sa_column=Column(Text))
    suppressed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))

    score: float = Field(nullable=False)
    score_breakdown: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONDocument, nullable=False)
    )

    occurrences: int = Field(default=1, nullable=False)
    first_seen: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    observed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# PostgreSQL-only index for `tag=key=value` filters (JSONB containment); created by the migration.
FINDINGS_TAGS_GIN = "ix_findings_tags_gin"


class FindingAlias(SQLModel, table=True):
    """Every key a finding was reported under -> the finding, so any path finds the same row."""

    __tablename__ = "finding_aliases"

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True, autoincrement=True))
    alias_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    alias: str = Field(sa_column=Column(Text, nullable=False))
    finding_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("findings.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class FindingEvent(SQLModel, table=True):
    """One row per lifecycle step: created, seen, updated, regressed, resolved_by_source, triage..."""

    __tablename__ = "finding_events"

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True, autoincrement=True))
    finding_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("findings.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    from_status: str | None = Field(default=None, sa_column=Column(String(16)))
    to_status: str | None = Field(default=None, sa_column=Column(String(16)))
    note: str | None = Field(default=None, sa_column=Column(Text))
