"""Request and response models of the HTTP API (tables are not API models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.contracts import NormalizedFinding

Outcome = Literal["created", "updated", "unchanged"]
TriageStatus = Literal["open", "acknowledged", "suppressed", "resolved", "false_positive"]


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `resource.id`.")
    message: str


class ErrorBody(BaseModel):
    """Every error response: what went wrong, in words, and where."""

    detail: str = Field(examples=["finding is already resolved"])
    code: str = Field(examples=["conflict"])
    errors: list[FieldErrorOut] | None = None


class FindingBatch(BaseModel):
    """A batch of native findings (1 to 1000)."""

    model_config = ConfigDict(extra="forbid")
    findings: list[NormalizedFinding] = Field(min_length=1, max_length=1000)


class FailedItem(BaseModel):
    index: int
    errors: list[FieldErrorOut]


class ResultItem(BaseModel):
    index: int
    id: str
    outcome: Outcome


class IngestResponse(BaseModel):
    accepted: int
    created: int
    updated: int
    unchanged: int
    resolved: int = Field(0, description="Findings a complete re-scan (`complete=true`) no longer reported.")
    failed: list[FailedItem]
    results: list[ResultItem]


class ReportIngestResponse(IngestResponse):
    format: str = Field(description="The format the report was parsed as.", examples=["trivy"])


class ResourceOut(BaseModel):
    type: str | None
    id: str | None
    account_id: str | None
    region: str | None
    tags: dict[str, str]
    public: bool


class LocationOut(BaseModel):
    repository: str | None
    path: str | None
    line: int | None


class FindingSummary(BaseModel):
    id: str
    source: str
    source_id: str | None
    type: str
    title: str
    severity: float
    severity_label: str
    score: float
    status: str
    resource: ResourceOut
    location: LocationOut | None
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    team: str | None = Field(default=None, description="The owning team, chosen by the routing rules.")
    routed_by: str | None = Field(
        default=None, description="What chose the team: `rule:<name>`, `tag:<key>` or `default`."
    )
    silenced_by: str | None = Field(
        default=None, description="Id of the active silence holding this finding's notifications back."
    )


class ScoreFactor(BaseModel):
    name: str
    value: float
    reason: str


class ScoreBreakdown(BaseModel):
    severity: float
    severity_label: str
    factors: list[ScoreFactor]
    raw: float | None = Field(None, description="severity times every factor, before the top is compressed")
    score: float
    formula: str


class EventOut(BaseModel):
    at: datetime
    kind: str = Field(examples=["regressed"])
    actor: str
    from_status: str | None
    to_status: str | None
    note: str | None


class DeliveredIn(BaseModel):
    """Where the finding was sent and the message/ticket it lives in there."""

    channel: str
    kind: str
    ref: str = Field(description="Slack message ts, email Message-ID, Jira issue key, GitHub issue number...")
    last_sent_at: datetime | None


class FindingDetail(FindingSummary):
    description: str | None
    remediation: str | None
    references: list[str]
    confidence: int | None
    data_sensitivity: str | None
    context: dict[str, Any]
    source_status: str | None
    status_note: str | None
    suppressed_until: datetime | None
    observed_at: datetime | None
    score_breakdown: ScoreBreakdown
    aliases: list[str]
    events: list[EventOut] = Field(description="Most recent first (up to 100).")
    event_count: int
    delivered_in: list[DeliveredIn] = Field(
        default_factory=list,
        description="Messages and tickets that carry this finding (a ticket follows its finding).",
    )
    raw: Any = Field(description="The original source document, verbatim.")


class FindingPage(BaseModel):
    items: list[FindingSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: TriageStatus
    note: str | None = Field(None, max_length=4096)
    suppressed_until: datetime | None = Field(None, description="Required with status `suppressed`.")


class StatsOut(BaseModel):
    total: int
    by_status: dict[str, int]
    by_severity: dict[str, int]
    by_source: dict[str, int]
    as_of: datetime = Field(description="When these counts were taken (cached briefly on large stores).")


Scope = Literal["ingest", "read", "triage", "admin"]
SourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", examples=["trivy-ci"]
    )
    scopes: list[Scope] = Field(min_length=1, examples=[["ingest"]])
    expires_at: datetime | None = None
    sources: list[SourceName] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Bind an ingest token to these finding sources (the `source` of each finding, e.g. "
        "`trivy`, `guardduty`): a request carrying any other source is refused with 403. Omit for any source.",
        examples=[["trivy"]],
    )


class TokenOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    sources: list[str] | None = Field(None, description="The finding sources this token may post; null: any.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown once; store it now.")
