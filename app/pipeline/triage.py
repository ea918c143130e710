"""Triage: the status changes people make, and which ones are allowed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.errors import ConflictError, NotFoundError, ValidationFailed
from app.pipeline import notify, route
from app.pipeline.dedupe import ACKNOWLEDGED, FALSE_POSITIVE, OPEN, RESOLVED, SUPPRESSED
from app.pipeline.routing_table import load_routing_table
from app.repositories import outbox, routing_facts
from app.repositories import triage as repo

ALLOWED: dict[str, frozenset[str]] = {
    OPEN: frozenset({ACKNOWLEDGED, SUPPRESSED, RESOLVED, FALSE_POSITIVE}),
    ACKNOWLEDGED: frozenset({OPEN, SUPPRESSED, RESOLVED, FALSE_POSITIVE}),
    SUPPRESSED: frozenset({OPEN, ACKNOWLEDGED, RESOLVED, FALSE_POSITIVE}),
    RESOLVED: frozenset({OPEN, FALSE_POSITIVE}),
    FALSE_POSITIVE: frozenset({OPEN}),
}


@dataclass(slots=True)
class TriageChange:
    finding_id: str
    before: dict[str, str | None]
    after: dict[str, str | None]


def check_transition(current: str, target: str) -> None:
    if current == target:
        raise ConflictError(f"finding is already {current}")
    allowed = ALLOWED.get(current, frozenset())
    if target not in allowed:
        options = ", ".join(sorted(allowed)) or "none"
        raise ConflictError(
            f"cannot change a {current} finding to {target}; allowed from {current}: {options}"
        )


def change_status(
    session: Session,
    finding_id: str,
    target: str,
    note: str | None,
    suppressed_until: datetime | None,
    actor: str,
    now: datetime,
) -> TriageChange:
    if target == SUPPRESSED:
        if suppressed_until is None:
            raise ValidationFailed(
                "suppressed_until is required to suppress a finding", field="suppressed_until"
            )
        if suppressed_until <= now:
            raise ValidationFailed("suppressed_until must be in the future", field="suppressed_until")
    elif suppressed_until is not None:
        raise ValidationFailed(
            "suppressed_until is only allowed with status suppressed", field="suppressed_until"
        )
    row = repo.lock_finding(session, finding_id)
    if row is None:
        raise NotFoundError(f"no finding with id {finding_id!r}")
    check_transition(row.status, target)
    repo.set_status(session, finding_id, target, note, suppressed_until, now)
    repo.add_event(
        session,
        {
            "finding_id": finding_id,
            "kind": "triage",
            "actor": actor,
            "at": now,
            "from_status": row.status,
            "to_status": target,
            "note": note,
        },
    )
    before = {"status": row.status, "note": row.status_note, "suppressed_until": _iso(row.suppressed_until)}
    after = {"status": target, "note": note, "suppressed_until": _iso(suppressed_until)}
    _tell_channels(session, finding_id, row.status, target, actor, now)
    return TriageChange(finding_id, before, after)


CLOSED = frozenset({RESOLVED, FALSE_POSITIVE})


def _tell_channels(
    session: Session, finding_id: str, before: str, target: str, actor: str, now: datetime
) -> None:
    """A person closing or reopening a finding closes or reopens its tickets and incidents (and tells chat
    channels whose policy wants ``resolved``/``regressed``); acknowledging it acknowledges its incident; all
    in the same transaction (the outbox). A change that came from a tracker is not echoed back to it."""
    if target in CLOSED and before not in CLOSED:
        event: route.NotificationEvent = "resolved"
    elif target == OPEN and before in CLOSED:
        event = "regressed"
    elif target == ACKNOWLEDGED and before == OPEN:
        event = "acknowledged"  # only incident channels want it (notify.STATEFUL_EVENTS)
    else:
        return
    rows = routing_facts.rows_for_routing(session, [finding_id])
    if not rows:
        return
    table = load_routing_table(session, now)
    facts = route.Facts.from_row(rows[0])
    change = notify.Change(finding_id, facts, event=event)
    origin = actor.partition(":")[0]  # "jira" for a change made in Jira
    kinds = {channel.id: channel.kind for channel in table.channels}
    intents = [
        intent
        for intent in notify.intents_for(change, route.route(facts, table), table)
        if kinds.get(intent.channel_id) != origin
    ]
    if intents:
        outbox.enqueue(session, intents, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
