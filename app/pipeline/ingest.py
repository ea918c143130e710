"""The one place where the stages meet: normalize -> fingerprint -> deduplicate -> score -> route -> outbox.

One transaction per batch, opened by the caller; a constant number of statements whatever the batch size.
Routing runs only for findings that something happened to (created, content changed, regressed, resolved,
score went up): a plain repeat keeps its owner and costs no routing. Notification intents are written in
the same transaction as the finding changes that cause them (the outbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.clock import new_id, utcnow
from app.pipeline import dedupe, fingerprint, notify, route, score
from app.pipeline.dedupe import Incoming
from app.pipeline.normalize import ValidItem
from app.pipeline.routing_table import load_routing_table
from app.repositories import outbox, routing_facts
from app.repositories.findings import FindingState
from app.settings import ScoringWeights


@dataclass(frozen=True, slots=True)
class Scan:
    """A report that declared its scope; ``complete`` reports resolve what they no longer contain."""

    scope: str  # "<format>|<scope>": tools scanning the same scope do not resolve each other's findings
    id: str
    complete: bool


@dataclass(slots=True)
class IngestOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    resolved: int = 0
    results: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (finding id, outcome)


def to_incoming(items: list[ValidItem]) -> list[Incoming]:
    incoming = []
    for item in items:
        identity = fingerprint.identity_of(item.finding)
        digest = fingerprint.content_hash(item.finding)
        incoming.append(
            Incoming(
                indexes=[item.index],
                finding=item.finding,
                raw=item.raw,
                fingerprint=identity.fingerprint,
                alias_keys=identity.alias_keys,
                alias_hashes=tuple(fingerprint.alias_hash(key) for key in identity.alias_keys),
                content_hash=digest,
                copy_hashes=[digest],
                observed_first=_earliest(item.finding.first_observed_at, item.finding.observed_at),
                reported_occurrences=item.finding.occurrences,
            )
        )
    return incoming


def ingest(
    session: Session,
    items: list[ValidItem],
    actor: str,
    weights: ScoringWeights,
    now: datetime | None = None,
    scan: Scan | None = None,
) -> IngestOutcome:
    """Store a batch of validated findings and return the outcome of each batch index. With a complete
    ``scan``, the scope's findings this report no longer carries are then resolved (same transaction)."""
    return ingest_chunks(session, [items], actor, weights, now, scan)


def ingest_chunks(
    session: Session,
    chunks: Iterable[list[ValidItem]],
    actor: str,
    weights: ScoringWeights,
    now: datetime | None = None,
    scan: Scan | None = None,
) -> IngestOutcome:
    """``ingest`` over a report consumed chunk by chunk (each chunk is stored, then dropped by the caller's
    iterator), all in the caller's one transaction; indexes run across chunks. A complete ``scan`` is
    resolved once, after the last chunk. A finding repeated in a later chunk is a repeat of the row the
    earlier chunk wrote."""
    now = now or utcnow()
    outcome = IngestOutcome()
    routing = _Routing(session, now)
    for items in chunks:
        part = _store(session, items, actor, weights, now, scan, routing)
        outcome.created += part.created
        outcome.updated += part.updated
        outcome.unchanged += part.unchanged
        outcome.results.update(part.results)
    if scan is not None and scan.complete:
        resolved = dedupe.resolve_absent(session, scan.scope, scan.id, actor, now)
        outcome.resolved = len(resolved)
        routing.resolved(resolved)
    return outcome


class _Routing:
    """The routing step of one ingest call: the routing table is loaded once, on first need (a batch of
    plain repeats never loads it), and intents are queued per chunk."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._table: route.RoutingTable | None = None

    @property
    def table(self) -> route.RoutingTable:
        if self._table is None:
            self._table = load_routing_table(self.session, self.now)
        return self._table

    def routes(self, facts: route.Facts) -> Sequence[route.Route]:
        return route.route(facts, self.table)

    def queue(self, changes: list[tuple[notify.Change, Sequence[route.Route]]]) -> None:
        intents = [i for change, routes in changes for i in notify.intents_for(change, routes, self.table)]
        if intents:
            outbox.enqueue(self.session, intents, self.now)

    def resolved(self, finding_ids: Sequence[str]) -> None:
        """Findings a complete re-scan resolved: tell their owners (``resolved`` events)."""
        rows = routing_facts.rows_for_routing(self.session, finding_ids)
        changes = []
        for row in rows:
            facts = route.Facts.from_row(row)
            changes.append((notify.Change(row["id"], facts, event="resolved"), self.routes(facts)))
        self.queue(changes)


def _store(
    session: Session,
    items: list[ValidItem],
    actor: str,
    weights: ScoringWeights,
    now: datetime,
    scan: Scan | None,
    routing: _Routing,
) -> IngestOutcome:
    outcome = IngestOutcome()
    if not items:
        return outcome
    incoming = dedupe.merge_duplicates(to_incoming(items))
    matched = dedupe.match_existing(session, incoming)

    events: list[dict[str, Any]] = []
    aliases: list[dict[str, Any]] = []
    targets: dict[str, tuple[str, str]] = {}  # incoming fingerprint -> (finding id, its fingerprint)

    changes: list[tuple[notify.Change, Sequence[route.Route]]] = []
    owners: dict[str, tuple[str | None, str | None]] = {}

    new_rows = [_new_row(item, weights, now, scan) for item in matched.new]
    new_routing = [_assign_owner(row, routing) for row in new_rows]
    inserted = dedupe.write_new(session, new_rows)
    lost_race = [item for item in matched.new if item.fingerprint not in inserted]
    for item, row, (routes, facts) in zip(matched.new, new_rows, new_routing, strict=True):
        if item.fingerprint not in inserted:
            continue
        if row["status"] == dedupe.OPEN:
            changes.append((notify.Change(row["id"], facts, event="new"), routes))
        targets[item.fingerprint] = (row["id"], item.fingerprint)
        events.append(_event(row["id"], "created", actor, now, None, row["status"], row["status_note"]))
        if item.count > 1:
            events.append(
                _event(row["id"], "seen", actor, now, None, None, f"{item.count - 1} more in batch")
            )
        _record(outcome, item, row["id"], "created")
    repeats = matched.existing + dedupe.lock_conflicts(session, lost_race)

    seen_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for item, state in repeats:
        row, group_outcome, event = _repeat_row(item, state, weights, now, scan)
        (changed_rows if group_outcome == "updated" and row.get("content_hash") else seen_rows).append(row)
        change = _repeat_change(item, state, row, event.event, group_outcome)
        if change is not None:
            found = routing.routes(change.facts)
            changes.append((change, found))
            owner = notify.owner(found)
            if owner != (state.team, state.routed_by):
                owners[state.id] = owner
        targets[item.fingerprint] = (state.id, state.fingerprint)
        events.append(
            _event(state.id, event.event or "seen", actor, now, state.status, row["status"], event.note)
        )
        _record(outcome, item, state.id, group_outcome)
    dedupe.write_repeats(session, seen_rows, changed_rows)

    for item in incoming:
        target = targets.get(item.fingerprint)
        if target is None:
            continue  # folded into another finding through an alias
        finding_id, fingerprint_of_target = target
        # The finding's own primary key is its fingerprint; only the other keys need an alias row.
        aliases.extend(
            {"alias_hash": h, "alias": key, "finding_id": finding_id, "created_at": now}
            for key, h in zip(item.alias_keys, item.alias_hashes, strict=True)
            if h != fingerprint_of_target
        )
    dedupe.write_history(session, events, aliases)
    routing_facts.set_owners(session, owners)
    routing.queue(changes)
    return outcome


def _assign_owner(row: dict[str, Any], routing: _Routing) -> tuple[Sequence[route.Route], route.Facts]:
    """Route a new finding and store its owner on the row about to be inserted."""
    facts = route.Facts.from_row(row)
    routes = routing.routes(facts)
    row["team"], row["routed_by"] = notify.owner(routes)
    return routes, facts


def _repeat_change(
    item: Incoming, state: FindingState, row: dict[str, Any], lifecycle: str | None, group_outcome: str
) -> notify.Change | None:
    """What a repeat means for routing: None for a plain repeat (no routing at all, the owner stays)."""
    event = notify.NOTIFYING_LIFECYCLE.get(lifecycle or "")
    if event is None and group_outcome != "updated" and row["score"] <= state.score:
        return None
    facts = replace(route.Facts.from_finding(item.finding, row["score"], state.id), status=row["status"])
    return notify.Change(state.id, facts, event=event, previous_score=state.score)


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _record(outcome: IngestOutcome, item: Incoming, finding_id: str, group_outcome: str) -> None:
    for index, result in dedupe.outcome_per_index(item, group_outcome).items():
        outcome.results[index] = (finding_id, result)
        setattr(outcome, result, getattr(outcome, result) + 1)


def _new_row(
    item: Incoming, weights: ScoringWeights, now: datetime, scan: Scan | None = None
) -> dict[str, Any]:
    start = dedupe.initial_status(item.finding)
    occurrences = dedupe.occurrences_after(None, item)
    value, breakdown = score.score_finding(item.finding, occurrences, weights)
    first_seen = min(item.observed_first, now) if item.observed_first else now
    return {
        "id": new_id(),
        "fingerprint": item.fingerprint,
        "source": item.finding.source.lower(),
        "source_id": item.finding.source_id,
        "type": item.finding.type,
        "resource_id": item.finding.resource.id,
        **dedupe.content_columns(item),
        "status": start.status,
        "status_note": start.note,
        "suppressed_until": None,
        "score": value,
        "score_breakdown": breakdown,
        "occurrences": occurrences,
        "first_seen": first_seen,
        "last_seen": now,
        "observed_at": item.finding.observed_at,
        "created_at": now,
        "updated_at": now,
        "scan_scope": scan.scope if scan else None,
        "last_scan_id": scan.id if scan else None,
        "team": None,  # set by routing (_assign_owner)
        "routed_by": None,
    }


def _repeat_row(
    item: Incoming, state: FindingState, weights: ScoringWeights, now: datetime, scan: Scan | None = None
) -> tuple[dict[str, Any], str, dedupe.Transition]:
    step = dedupe.transition_on_report(state.status, state.suppressed_until, item.finding.status, now)
    occurrences = dedupe.occurrences_after(state.occurrences, item)
    value, breakdown = score.score_finding(item.finding, occurrences, weights)
    changed = item.content_hash != state.content_hash
    row: dict[str, Any] = {
        "id": state.id,
        "status": step.status,
        "status_note": step.note if step.event else state.status_note,
        "suppressed_until": None if step.status != dedupe.SUPPRESSED else state.suppressed_until,
        "score": value,
        "score_breakdown": breakdown,
        "occurrences": occurrences,
        "last_seen": dedupe.next_last_seen(state.last_seen, now),
        "observed_at": item.finding.observed_at,
        "updated_at": now,
        "scan_scope": scan.scope if scan else state.scan_scope,
        "last_scan_id": scan.id if scan else state.last_scan_id,
    }
    if changed:
        row.update(dedupe.content_columns(item))
    if step.event is None and not changed:
        return row, "unchanged", step
    if step.event is None:
        step = dedupe.Transition(step.status, "updated", "content changed")
    return row, "updated", step


def _event(
    finding_id: str,
    kind: str,
    actor: str,
    at: datetime,
    from_status: str | None,
    to_status: str | None,
    note: str | None,
) -> dict[str, Any]:
    return {
        "finding_id": finding_id,
        "kind": kind,
        "actor": actor,
        "at": at,
        "from_status": from_status,
        "to_status": to_status,
        "note": note,
    }
