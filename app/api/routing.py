"""Routing explain: where a finding goes, which rules were tried and why, and whether it would notify now.

``POST /v1/routing/explain`` for a finding that may not exist yet (debugging a rule before a scanner
sends anything), ``GET /v1/findings/{id}/routing`` for a stored one with its notification history. Both
read only: nothing is routed, stored or queued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ReadCaller, ReadSessionDep, SettingsDep
from app.api.docs import EXAMPLE_FINDING, error_responses
from app.clock import utcnow
from app.contracts import NormalizedFinding, NotificationEvent
from app.errors import NotFoundError
from app.pipeline import score
from app.pipeline.notify import NOTIFYING_LIFECYCLE
from app.pipeline.route import Facts
from app.pipeline.route_explain import Explanation, NotificationHistory, explain
from app.pipeline.routing_table import load_routing_table
from app.repositories import routing_facts, routing_snapshot

router = APIRouter(prefix="/v1", tags=["routing"])


class ExplainRequest(BaseModel):
    """A finding in the native schema (as posted to `POST /v1/findings`) and what to evaluate."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"finding": EXAMPLE_FINDING, "event": "new"}]},
    )

    finding: NormalizedFinding
    event: NotificationEvent = Field("new", description="The event to evaluate the notification policy for.")
    score: float | None = Field(
        None,
        ge=0,
        le=100,
        description="The risk score to assume; computed as ingest would (first occurrence) when omitted.",
    )
    at: datetime | None = Field(
        None,
        description="Evaluate at this instant instead of now (e.g. to check quiet hours at night). "
        "UTC when no zone is given.",
    )


FindingId = Annotated[str, Path(min_length=1, max_length=64, description="The finding's id.")]


@router.post(
    "/routing/explain",
    summary="Explain how a finding would be routed",
    description=(
        "Runs a finding (native schema, not stored) through the current ownership rules, policies, "
        "silences and quiet hours, and says which rules were tried and why they matched or not, which "
        "team owns it, which channels would be told, the group key, and for each channel whether it "
        "would be notified now and why not. Nothing is stored or sent. Needs `read`."
    ),
    response_model=Explanation,
    responses=error_responses(401, 403, 413, 422),
)
def explain_finding(
    body: ExplainRequest, caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep
) -> Explanation:
    now = utcnow() if body.at is None else body.at.replace(tzinfo=body.at.tzinfo or UTC).astimezone(UTC)
    value = body.score
    if value is None:
        value, _ = score.score_finding(body.finding, 1, settings.scoring)
    table = load_routing_table(session, now)
    return explain(Facts.from_finding(body.finding, value), table, now, body.event)


@router.get(
    "/findings/{finding_id}/routing",
    summary="Explain how a stored finding is routed",
    description=(
        "The same explanation for a stored finding, with its notification history: a channel already "
        "notified of the event says when. The event defaults to the finding's last lifecycle event that "
        "notifies (`new`, `regressed`, `resolved`); pass `event` to ask about another one (e.g. "
        "`reminder`). Needs `read`."
    ),
    response_model=Explanation,
    responses=error_responses(401, 403, 404, 422),
)
def explain_stored_finding(
    finding_id: FindingId,
    caller: ReadCaller,
    session: ReadSessionDep,
    event: Annotated[
        NotificationEvent | None, Query(description="Evaluate this event instead of the last one.")
    ] = None,
) -> Explanation:
    rows = routing_facts.rows_for_routing(session, [finding_id])
    if not rows:
        raise NotFoundError(f"no finding with id {finding_id!r}")
    now = utcnow()
    if event is None:
        kind = routing_snapshot.last_event_kind(session, finding_id, NOTIFYING_LIFECYCLE)
        event = NOTIFYING_LIFECYCLE[kind] if kind is not None else "new"
    history = [
        NotificationHistory(**row) for row in routing_snapshot.notification_history(session, finding_id)
    ]
    table = load_routing_table(session, now)
    return explain(Facts.from_row(rows[0]), table, now, event, history)
