"""Rows of the findings and finding_aliases tables, exactly as the service would write them.

Built with the service's own code (validation, ``ingest.to_incoming``, ``ingest._new_row``, the
fingerprint functions and the engine's JSON serializer), so the ceiling and the bulk-loaded store hold
the same bytes as an ingested finding. ``clone_row`` makes a million distinct rows cheaply from a pool
of templates: it changes only the identity (what ``bench.generator.clone_finding`` changes in the JSON)
and recomputes the fingerprint, alias and content hash with the real functions.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.clock import new_id
from app.contracts import NormalizedFinding
from app.db import _json_serializer
from app.models import Finding, FindingAlias, FindingEvent
from app.pipeline import dedupe, fingerprint, ingest
from app.pipeline.dedupe import Incoming
from app.pipeline.normalize import validate_items
from app.settings import ScoringWeights, load_settings
from bench.generator import findings

FINDINGS_TABLE = Finding.__table__  # type: ignore[attr-defined]
ALIASES_TABLE = FindingAlias.__table__  # type: ignore[attr-defined]
EVENTS_TABLE = FindingEvent.__table__  # type: ignore[attr-defined]
FINDING_COLUMNS: tuple[str, ...] = tuple(column.name for column in FINDINGS_TABLE.columns)
JSON_COLUMNS = frozenset({"tags", "references", "context", "raw", "score_breakdown"})
ALIAS_COLUMNS = ("alias_hash", "alias", "finding_id", "created_at")
EVENT_COLUMNS = ("finding_id", "kind", "actor", "at", "from_status", "to_status", "note")
ACTOR = "bootstrap-admin"


@dataclass(slots=True)
class Template:
    """One distinct finding: its model, its findings row with JSON columns already serialized."""

    finding: NormalizedFinding
    row: dict[str, Any]


def incoming_of(payloads: list[dict[str, Any]]) -> list[Incoming]:
    """Validated, fingerprinted and merged as ``POST /v1/findings`` does it."""
    valid, failed = validate_items(payloads)
    if failed:
        raise ValueError(f"generated findings failed validation: {failed[0]}")
    return dedupe.merge_duplicates(ingest.to_incoming(valid))


def build_rows(
    payloads: list[dict[str, Any]], weights: ScoringWeights, now: datetime | None = None
) -> tuple[list[Template], list[dict[str, Any]]]:
    """The findings rows (one per distinct finding, JSON serialized like the engine does) and alias rows."""
    now = now or datetime.now(UTC)
    templates: list[Template] = []
    aliases: list[dict[str, Any]] = []
    for item in incoming_of(payloads):
        row = serialize_json(ingest._new_row(item, weights, now))
        templates.append(Template(item.finding, row))
        aliases.extend(
            {"alias_hash": h, "alias": key, "finding_id": row["id"], "created_at": now}
            for key, h in zip(item.alias_keys, item.alias_hashes, strict=True)
        )
    return templates, aliases


def serialize_json(row: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_COLUMNS:
        row[name] = _json_serializer(row[name])
    return row


CLONE_COLUMNS = (
    "tid",
    "id",
    "fingerprint",
    "source_id",
    "resource_id",
    "path",
    "content_hash",
    "alias_hash",
    "alias",
)


def clone_identity(template: Template, tid: int, serial: int) -> tuple[Any, ...]:
    """What differs between ``template``'s row and the row of ``clone_finding(its payload, serial)``:
    values in ``CLONE_COLUMNS`` order (the rest of the row is the template's, see ``clone_row``)."""
    f = template.finding
    row = template.row
    source_id, resource_id, path, digest = (
        row["source_id"],
        row["resource_id"],
        row["path"],
        row["content_hash"],
    )
    if f.source_id:
        source_id = f"b{serial:09d}-{f.source_id}"
        f = f.model_copy(update={"source_id": source_id})
    elif f.resource.id:
        resource_id = f"{f.resource.id}~b{serial}"
        f = f.model_copy(update={"resource": f.resource.model_copy(update={"id": resource_id})})
    else:
        assert f.location is not None
        path = f"{f.location.path}~b{serial}"
        f = f.model_copy(update={"location": f.location.model_copy(update={"path": path})})
        digest = fingerprint.content_hash(f)  # the path is part of the content
    identity = fingerprint.identity_of(f)
    if len(identity.alias_keys) != 1:
        raise ValueError("clone_identity handles findings with one alias key (generated findings have one)")
    key = identity.alias_keys[0]
    return (
        tid,
        new_id(),
        identity.fingerprint,
        source_id,
        resource_id,
        path,
        digest,
        fingerprint.alias_hash(key),
        key,
    )


def clone_row(
    template: Template, serial: int, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The findings row, alias rows and 'created' event of ``clone_finding(template payload, serial)``
    (the Python twin of the INSERT ... SELECT in bench/growth.py; used to check it)."""
    identity = dict(zip(CLONE_COLUMNS, clone_identity(template, 0, serial), strict=True))
    row = dict(template.row)
    row.update({name: identity[name] for name in CLONE_COLUMNS[1:7]})
    observed = template.finding.observed_at
    row["first_seen"] = min(observed, now) if observed else now
    for name in ("last_seen", "created_at", "updated_at"):
        row[name] = now
    aliases = [
        {
            "alias_hash": identity["alias_hash"],
            "alias": identity["alias"],
            "finding_id": row["id"],
            "created_at": now,
        }
    ]
    event = ingest._event(row["id"], "created", ACTOR, now, None, row["status"], row["status_note"])
    return row, aliases, event


def created_events(templates: list[Template], now: datetime) -> list[dict[str, Any]]:
    return [
        ingest._event(t.row["id"], "created", ACTOR, now, None, t.row["status"], t.row["status_note"])
        for t in templates
    ]


def _payloads_and_rows_chunk(args: tuple[int, int, int, datetime]) -> tuple[bytes, bytes]:
    count, seed, start, now = args
    payloads = list(findings(count, seed, start))
    templates, _ = build_rows(payloads, load_settings().scoring, now)
    rows = [[t.row[name] for name in FINDING_COLUMNS] for t in templates]
    return orjson.dumps(payloads), orjson.dumps(rows)


def payloads_and_rows(
    count: int, seed: int = 7, workers: int | None = None
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """``findings(count, seed)`` as posted (JSON-ready) and their findings rows (values in
    ``FINDING_COLUMNS`` order, datetimes as ISO strings), generated and built by a process pool."""
    workers = workers or os.cpu_count() or 1
    now = datetime.now(UTC)
    step = max(1000, -(-count // (workers * 6)))
    parts = [(min(step, count - offset), seed, offset, now) for offset in range(0, count, step)]
    payloads: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for payload_blob, row_blob in pool.map(_payloads_and_rows_chunk, parts):
            payloads.extend(orjson.loads(payload_blob))
            rows.extend(orjson.loads(row_blob))
    if len(rows) != len(payloads):
        raise ValueError("generated findings must be distinct (one row each)")
    return payloads, rows
