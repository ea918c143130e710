"""/v1/findings: ingest a batch, list, show and triage findings."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from sqlalchemy import Row

from app.api.deps import (
    EngineDep,
    IngestCaller,
    RawBody,
    ReadCaller,
    ReadSessionDep,
    RequestIdDep,
    SessionDep,
    SettingsDep,
    TriageCaller,
)
from app.api.docs import EXAMPLE_FINDING, error_responses, json_body
from app.api.schemas import (
    DeliveredIn,
    EventOut,
    FailedItem,
    FieldErrorOut,
    FindingDetail,
    FindingPage,
    FindingSummary,
    IngestResponse,
    LocationOut,
    ResourceOut,
    ResultItem,
    ScoreBreakdown,
    TriageRequest,
)
from app.auth import require_sources
from app.clock import utcnow
from app.contracts import SEVERITY_MIN_SCORE, Severity, parse_severity
from app.db import run_transaction
from app.errors import NotFoundError, ValidationFailed
from app.metrics import FINDINGS_INGESTED, FINDINGS_REJECTED
from app.pipeline import ingest, route, triage
from app.pipeline.dedupe import STATUSES
from app.pipeline.fingerprint import primary_key_of
from app.pipeline.normalize import ItemError, validate_items
from app.pipeline.routing_table import load_routing_table
from app.reports import MAX_DEPTH, is_too_deep_error
from app.repositories import audit, routing_facts
from app.repositories import finding_queries as queries

router = APIRouter(prefix="/v1", tags=["findings"])

EVENTS_SHOWN = 100


def decode_batch(body: bytes, limit: int) -> list[Any]:
    """The ``findings`` list of a posted batch, or a 422 saying what is wrong with the envelope."""
    if not body.strip():
        raise ValidationFailed('the body is empty; send {"findings": [...]}')
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if is_too_deep_error(exc):
            raise ValidationFailed(f"the body nests more than {MAX_DEPTH} levels deep", field="body") from exc
        raise ValidationFailed(f"the body is not valid JSON: {exc}", field="body") from exc
    if not isinstance(document, dict) or "findings" not in document:
        raise ValidationFailed('the body must be a JSON object {"findings": [...]}', field="findings")
    extra = sorted(set(document) - {"findings"})
    if extra:
        raise ValidationFailed(f"unknown top-level field(s): {', '.join(extra)}", field=extra[0])
    items = document["findings"]
    if not isinstance(items, list):
        raise ValidationFailed("findings must be a list of finding objects", field="findings")
    if not 1 <= len(items) <= limit:
        raise ValidationFailed(
            f"findings must hold 1 to {limit} findings per request, got {len(items)}; split the batch",
            field="findings",
        )
    return items


def _failed(errors: list[ItemError]) -> list[FailedItem]:
    return [
        FailedItem(index=e.index, errors=[FieldErrorOut(field=f.field, message=f.message) for f in e.errors])
        for e in errors
    ]


@router.post(
    "/findings",
    summary="Ingest a batch of native findings",
    description=(
        "Stores 1 to 1000 findings in one transaction. Valid findings are stored even when others in the "
        "batch are invalid; each invalid one is listed in `failed` with the fields at fault. A repeat of a "
        "known finding (same fingerprint or alias) updates it instead of creating a new one. Needs `ingest`."
    ),
    response_model=IngestResponse,
    responses=error_responses(401, 403, 413, 422, 503),
    openapi_extra=json_body("FindingBatch", {"findings": [EXAMPLE_FINDING]}),
)
def post_findings(
    caller: IngestCaller, body: RawBody, engine: EngineDep, settings: SettingsDep
) -> IngestResponse:
    items = decode_batch(body, settings.max_batch_findings)
    valid, failed = validate_items(items)
    require_sources(caller, (item.finding for item in valid))
    outcome = run_transaction(
        engine,
        lambda session: ingest.ingest(session, valid, caller.name, settings.scoring),
        settings.ingest_retry_attempts,
    )
    return ingest_response(len(valid), outcome, failed)


def ingest_response(accepted: int, outcome: ingest.IngestOutcome, failed: list[ItemError]) -> IngestResponse:
    """The answer to an ingest, and the metrics that count it (called after the commit)."""
    for name in ("created", "updated", "unchanged"):
        FINDINGS_INGESTED.labels(name).inc(getattr(outcome, name))
    FINDINGS_REJECTED.inc(len(failed))
    return IngestResponse(
        accepted=accepted,
        created=outcome.created,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
        resolved=outcome.resolved,
        failed=_failed(failed),
        results=[
            ResultItem(index=index, id=fid, outcome=result)
            for index, (fid, result) in sorted(outcome.results.items())
        ],
    )


SORTS = ("-score", "score", "-last_seen", "last_seen", "-first_seen", "first_seen")


def _encode_cursor(sort: str, row: Row[Any]) -> str:
    field = sort.lstrip("-")
    value = getattr(row, field)
    payload = [sort, value.isoformat() if isinstance(value, datetime) else value, row.id]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        saved_sort, value, last_id = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from exc
    if saved_sort != sort:
        raise ValidationFailed(f"cursor was made for sort={saved_sort}; keep the same sort", field="cursor")
    if sort.lstrip("-") != "score":
        value = datetime.fromisoformat(value)
    return value, str(last_id)


def _summary_fields(row: Any) -> dict[str, Any]:
    location = None
    if row.repository or row.path or row.line is not None:
        location = LocationOut(repository=row.repository, path=row.path, line=row.line)
    return {
        "id": row.id,
        "source": row.source,
        "source_id": row.source_id,
        "type": row.type,
        "title": row.title,
        "severity": row.severity,
        "severity_label": row.severity_label,
        "score": row.score,
        "status": row.status,
        "resource": ResourceOut(
            type=row.resource_type,
            id=row.resource_id,
            account_id=row.account_id,
            region=row.region,
            tags=row.tags or {},
            public=row.public,
        ),
        "location": location,
        "occurrences": row.occurrences,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "team": row.team,
        "routed_by": row.routed_by,
    }


def _silenced_by(session: Any, rows: Sequence[Any]) -> dict[str, str]:
    """finding id -> the active silence that holds its notifications back (computed now: silences come
    and go without touching findings)."""
    if not rows:
        return {}
    now = utcnow()
    silences = load_routing_table(session, now).silences
    if not silences:
        return {}
    found = {}
    for row in rows:
        silence = route.silence_for(route.Facts.from_row(row._mapping), silences, now)
        if silence is not None:
            found[row.id] = silence.id
    return found


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _severity_floor(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        text = value.strip().lower()
        return SEVERITY_MIN_SCORE[Severity(text)] if text in Severity.__members__ else parse_severity(value)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="severity_min") from exc


def _tag_pairs(tags: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for tag in tags or []:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            raise ValidationFailed(f"tag filter {tag!r} must look like key=value", field="tag")
        pairs.append((key, value))
    return pairs


@router.get(
    "/findings",
    summary="List findings",
    description="Filter, sort and page through findings. Pages are keyset-based: stable while new findings "
    "arrive. Needs `read`.",
    response_model=FindingPage,
    responses=error_responses(401, 403, 422),
)
def list_findings(
    caller: ReadCaller,
    session: ReadSessionDep,
    status: Annotated[
        list[str] | None, Query(description="open, acknowledged, ... (repeat or comma-separate)")
    ] = None,
    severity_min: Annotated[str | None, Query(description="A label (high) or a number 0-100.")] = None,
    source: Annotated[list[str] | None, Query()] = None,
    type: Annotated[list[str] | None, Query(description="Exact finding type.")] = None,
    account_id: Annotated[list[str] | None, Query()] = None,
    team: Annotated[list[str] | None, Query(description="Owning team (repeat or comma-separate).")] = None,
    resource_id: Annotated[str | None, Query(max_length=2048)] = None,
    tag: Annotated[
        list[str] | None, Query(description="key=value on the resource tags (repeatable, ANDed).")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text contained in the title.")] = None,
    since: Annotated[
        datetime | None, Query(description="Only findings last seen at or after this time.")
    ] = None,
    sort: Annotated[str, Query(description=f"One of {', '.join(SORTS)}.")] = "-score",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> FindingPage:
    if sort not in SORTS:
        raise ValidationFailed(f"sort must be one of {', '.join(SORTS)}", field="sort")
    statuses = _split(status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValidationFailed(f"unknown status {unknown[0]!r}; use {', '.join(STATUSES)}", field="status")
    flt = queries.FindingFilter(
        statuses=statuses,
        severity_min=_severity_floor(severity_min),
        sources=[s.lower() for s in _split(source)],
        types=type or [],
        account_ids=_split(account_id),
        teams=_split(team),
        resource_id=resource_id,
        tags=_tag_pairs(tag),
        text=q,
        since=since,
    )
    page = queries.Page(
        sort_field=sort.lstrip("-"),
        descending=sort.startswith("-"),
        limit=limit,
        after=_decode_cursor(cursor, sort) if cursor else None,
    )
    rows = queries.list_findings(session, flt, page)
    silenced = _silenced_by(session, rows[:limit])
    items = [FindingSummary(**_summary_fields(row), silenced_by=silenced.get(row.id)) for row in rows[:limit]]
    next_cursor = _encode_cursor(sort, rows[limit - 1]) if len(rows) > limit else None
    return FindingPage(items=items, next_cursor=next_cursor)


FindingId = Annotated[str, Path(min_length=1, max_length=64, description="The finding's id.")]


def _detail(session: Any, finding_id: str) -> FindingDetail:
    row = queries.get_finding(session, finding_id)
    if row is None:
        raise NotFoundError(f"no finding with id {finding_id!r}")
    events = [
        EventOut(
            at=e.at, kind=e.kind, actor=e.actor, from_status=e.from_status, to_status=e.to_status, note=e.note
        )
        for e in queries.get_events(session, finding_id, EVENTS_SHOWN)
    ]
    return FindingDetail(
        **_summary_fields(row),
        silenced_by=_silenced_by(session, [row]).get(row.id),
        description=row.description,
        remediation=row.remediation,
        references=row.references or [],
        confidence=row.confidence,
        data_sensitivity=row.data_sensitivity,
        context=row.context or {},
        source_status=row.source_status,
        status_note=row.status_note,
        suppressed_until=row.suppressed_until,
        observed_at=row.observed_at,
        score_breakdown=ScoreBreakdown(**row.score_breakdown),
        aliases=[
            primary_key_of(
                row.source, row.source_id, row.type, row.resource_id, row.repository, row.path, row.line
            ),
            *queries.get_aliases(session, finding_id),
        ],
        events=events,
        event_count=queries.count_events(session, finding_id),
        delivered_in=[DeliveredIn(**row) for row in routing_facts.delivered_in(session, finding_id)],
        raw=row.raw,
    )


@router.get(
    "/findings/{finding_id}",
    summary="Show one finding",
    description="The finding with occurrences, first/last seen, score breakdown, aliases and history. "
    "Needs `read`.",
    response_model=FindingDetail,
    responses=error_responses(401, 403, 404, 422),
)
def get_finding(finding_id: FindingId, caller: ReadCaller, session: ReadSessionDep) -> FindingDetail:
    return _detail(session, finding_id)


@router.patch(
    "/findings/{finding_id}",
    summary="Triage a finding",
    description="Acknowledge, suppress (until a time), resolve, mark false positive or reopen. An invalid "
    "transition answers 409 saying why. Written to the audit log. Needs `triage`.",
    response_model=FindingDetail,
    responses=error_responses(401, 403, 404, 409, 422),
)
def patch_finding(
    finding_id: FindingId,
    change: TriageRequest,
    caller: TriageCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> FindingDetail:
    now = utcnow()
    result = triage.change_status(
        session, finding_id, change.status, change.note, change.suppressed_until, caller.name, now
    )
    audit.record(
        session,
        actor=caller.name,
        action="finding.triage",
        target_type="finding",
        target_id=finding_id,
        before=result.before,
        after=result.after,
        request_id=request_id,
        at=now,
    )
    return _detail(session, finding_id)
