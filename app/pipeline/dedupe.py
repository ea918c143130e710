"""Deduplication and lifecycle: which incoming findings are new, repeats, regressions or resolutions.

Works on a whole batch: duplicates inside the batch are merged first (an upsert must not touch a row
twice), existing findings are found through any of their alias keys with one lookup and locked with one
query, and every write is one batched statement (see repositories/findings.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.contracts import NormalizedFinding, SourceStatus
from app.repositories import findings as repo
from app.repositories.findings import FindingState

# Triage statuses
OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
SUPPRESSED = "suppressed"
FALSE_POSITIVE = "false_positive"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, SUPPRESSED, FALSE_POSITIVE)

# last_seen moves at most once a minute: a repeat inside that window changes no indexed column, so
# PostgreSQL rewrites the row in place (HOT) instead of adding an entry to each of its indexes.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def next_last_seen(stored: datetime, now: datetime) -> datetime:
    return now if now - stored >= LAST_SEEN_RESOLUTION else stored


@dataclass(slots=True)
class Incoming:
    """One distinct finding of the batch (duplicates merged; the last copy's content wins)."""

    indexes: list[int]
    finding: NormalizedFinding
    raw: Any
    fingerprint: str
    alias_keys: tuple[str, ...]
    alias_hashes: tuple[str, ...]
    content_hash: str
    copy_hashes: list[str]
    observed_first: datetime | None
    reported_occurrences: int | None = None

    @property
    def count(self) -> int:
        return len(self.indexes)

    def absorb(self, other: Incoming) -> None:
        """Take over another copy's batch indexes, keys and reported count (not its content)."""
        self.indexes.extend(other.indexes)
        self.copy_hashes.extend(other.copy_hashes)
        self.alias_keys = tuple(dict.fromkeys(self.alias_keys + other.alias_keys))
        self.alias_hashes = tuple(dict.fromkeys(self.alias_hashes + other.alias_hashes))
        self.reported_occurrences = _max_reported(self.reported_occurrences, other.reported_occurrences)


@dataclass(slots=True)
class Transition:
    status: str
    event: str | None
    note: str | None = None


@dataclass(slots=True)
class Matched:
    """Incoming findings split into those with a stored row (locked) and the new ones."""

    existing: list[tuple[Incoming, FindingState]] = field(default_factory=list)
    new: list[Incoming] = field(default_factory=list)


def merge_duplicates(items: list[Incoming]) -> list[Incoming]:
    """Fold copies of the same fingerprint into one, keeping every batch index."""
    merged: dict[str, Incoming] = {}
    for item in items:
        current = merged.get(item.fingerprint)
        if current is None:
            merged[item.fingerprint] = item
            continue
        current.absorb(item)
        current.finding, current.raw, current.content_hash = item.finding, item.raw, item.content_hash
        if item.observed_first and (
            current.observed_first is None or item.observed_first < current.observed_first
        ):
            current.observed_first = item.observed_first
    return list(merged.values())


def _max_reported(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def occurrences_after(stored: int | None, item: Incoming) -> int:
    """A source that counts for itself is followed (never backwards); otherwise each report adds one."""
    if item.reported_occurrences is not None:
        return max(stored or 0, item.reported_occurrences)
    return (stored or 0) + item.count


def match_existing(session: Session, items: list[Incoming]) -> Matched:
    """Find the stored finding of each item by any alias or its fingerprint, and lock those rows."""
    # A key is either a finding's fingerprint (its primary key, hashed the same way) or one of its other
    # aliases: look every incoming key up both ways.
    hashes = [h for item in items for h in item.alias_hashes]
    targets = repo.alias_targets(session, hashes)
    wanted_ids = [targets[h] for item in items for h in item.alias_hashes if h in targets]
    states = repo.lock_states(session, wanted_ids, hashes)
    by_id = {state.id: state for state in states}
    by_fp = {state.fingerprint: state for state in states}
    matched = Matched()
    claimed: dict[str, Incoming] = {}
    for item in items:
        state = by_fp.get(item.fingerprint) or next(
            (
                found
                for h in item.alias_hashes
                if (found := by_fp.get(h) or (by_id.get(targets[h]) if h in targets else None)) is not None
            ),
            None,
        )
        if state is None:
            matched.new.append(item)
        elif state.id in claimed:
            # Two fingerprints of the batch lead to one stored finding through aliases: fold them.
            claimed[state.id].absorb(item)
        else:
            claimed[state.id] = item
            matched.existing.append((item, state))
    return matched


def lock_conflicts(session: Session, items: list[Incoming]) -> list[tuple[Incoming, FindingState]]:
    """Items whose insert lost a race with a concurrent batch: load the winner's row, locked."""
    states = repo.lock_states(session, [], [item.fingerprint for item in items])
    by_fp = {state.fingerprint: state for state in states}
    return [(item, by_fp[item.fingerprint]) for item in items if item.fingerprint in by_fp]


def initial_status(finding: NormalizedFinding) -> Transition:
    if finding.status == SourceStatus.resolved:
        return Transition(RESOLVED, "created", "reported resolved by the source")
    if finding.status == SourceStatus.suppressed:
        return Transition(SUPPRESSED, "created", "reported suppressed by the source")
    return Transition(OPEN, "created")


def transition_on_report(
    current: str, suppressed_until: datetime | None, reported: SourceStatus | None, now: datetime
) -> Transition:
    """The lifecycle step when a source reports a finding we already have."""
    if reported == SourceStatus.resolved:
        if current in (OPEN, ACKNOWLEDGED):
            return Transition(RESOLVED, "resolved_by_source", "the source reports it resolved")
        return Transition(current, None)
    if reported == SourceStatus.suppressed:
        if current in (OPEN, ACKNOWLEDGED):
            return Transition(SUPPRESSED, "suppressed_by_source", "the source reports it suppressed")
        return Transition(current, None)
    if current == RESOLVED:
        return Transition(OPEN, "regressed", "reported open again after it was resolved")
    if current == SUPPRESSED and suppressed_until is not None and suppressed_until <= now:
        return Transition(OPEN, "reopened", "suppression expired and the source still reports it")
    return Transition(current, None)


def outcome_per_index(item: Incoming, group_outcome: str) -> dict[int, str]:
    """The first copy carries the group's outcome; later copies in the batch are repeats of it."""
    outcomes = {item.indexes[0]: group_outcome}
    for position in range(1, len(item.indexes)):
        same = item.copy_hashes[position] == item.copy_hashes[position - 1]
        outcomes[item.indexes[position]] = "unchanged" if same else "updated"
    return outcomes


def write_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    return repo.insert_new(session, rows)


def write_repeats(session: Session, seen: list[dict[str, Any]], changed: list[dict[str, Any]]) -> None:
    repo.update_seen(session, seen)
    repo.update_content(session, changed)


def write_history(session: Session, events: list[dict[str, Any]], aliases: list[dict[str, Any]]) -> None:
    repo.insert_events(session, events)
    repo.insert_aliases(session, aliases)


def content_columns(item: Incoming) -> dict[str, Any]:
    """The columns that carry what the source said about the finding."""
    f = item.finding
    loc = f.location
    return {
        "title": f.title,
        "description": f.description,
        "severity": f.severity,
        "severity_label": f.severity_label.value,
        "resource_type": f.resource.type,
        "account_id": f.resource.account_id,
        "region": f.resource.region,
        "tags": f.resource.tags,
        "public": f.resource.public,
        "repository": loc.repository if loc else None,
        "path": loc.path if loc else None,
        "line": loc.line if loc else None,
        "confidence": f.confidence,
        "references": f.references,
        "remediation": f.remediation,
        "data_sensitivity": f.data_sensitivity.value if f.data_sensitivity else None,
        "context": f.context,
        "raw": item.raw,
        "source_status": f.status.value if f.status else None,
        "content_hash": item.content_hash,
    }


def resolve_absent(session: Session, scan_scope: str, scan_id: str, actor: str, now: datetime) -> list[str]:
    """A complete scan resolves the scope's open findings it did not report (``resolved_by_rescan``);
    those that come back later regress like any resolved finding."""
    ids = repo.resolve_absent_from_scan(session, scan_scope, scan_id, now)
    repo.insert_events(
        session,
        [
            {
                "finding_id": fid,
                "kind": "resolved_by_rescan",
                "actor": actor,
                "at": now,
                "from_status": None,
                "to_status": RESOLVED,
                "note": "absent from a complete re-scan of its scope",
            }
            for fid in ids
        ],
    )
    return ids
