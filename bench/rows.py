"""Rows of the findings table, exactly as the service would write them, and cheap clones of them.

Built with the service's own code (validation, ``ingest.to_incoming``, ``ingest._new_row``, the
fingerprint functions and the engine's JSON serializer), so the ceiling and the bulk-loaded store hold
the same bytes as an ingested finding. ``clone_identity`` makes a million distinct findings cheaply from
a pool of templates: it changes only the identity (what ``bench.generator.clone_finding`` changes in
the JSON) and recomputes fingerprint, alias and content hash with the real functions;
``verify_clones`` checks, before every run, that the result is what ``ingest.ingest`` itself stores.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import JSON, select

from app.clock import new_id
from app.contracts import NormalizedFinding
from app.db import _json_serializer, create_db_engine, unit_of_work
from app.migrations import upgrade
from app.models import Finding, FindingAlias, FindingEvent
from app.pipeline import dedupe, fingerprint, ingest
from app.pipeline.dedupe import Incoming
from app.pipeline.normalize import validate_items
from app.settings import ScoringWeights, load_settings
from bench.generator import clone_finding, findings

FINDINGS_TABLE = Finding.__table__  # type: ignore[attr-defined]
ALIASES_TABLE = FindingAlias.__table__  # type: ignore[attr-defined]
EVENTS_TABLE = FindingEvent.__table__  # type: ignore[attr-defined]
FINDING_COLUMNS: tuple[str, ...] = tuple(column.name for column in FINDINGS_TABLE.columns)
JSON_COLUMNS = frozenset(c.name for c in FINDINGS_TABLE.columns if isinstance(c.type, JSON))
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
) -> list[Template]:
    """One findings row per distinct finding, JSON columns serialized like the engine does."""
    now = now or datetime.now(UTC)
    return [
        Template(item.finding, serialize_json(ingest._new_row(item, weights, now)))
        for item in incoming_of(payloads)
    ]


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
    values in ``CLONE_COLUMNS`` order (the rest of the row is the template's). ``alias`` is the one key
    other than the fingerprint's own, or None: like ingest, no alias row for the primary key."""
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
    others = [key for key in identity.alias_keys if fingerprint.alias_hash(key) != identity.fingerprint]
    if len(others) > 1:
        raise ValueError("clone_identity handles at most one alias besides the primary key")
    alias = others[0] if others else None
    alias_hash = fingerprint.alias_hash(alias) if alias else None
    return (tid, new_id(), identity.fingerprint, source_id, resource_id, path, digest, alias_hash, alias)


def clone_row(template: Template, serial: int, now: datetime) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The findings row and (alias hash, alias) pairs of ``clone_finding(template payload, serial)``
    (the Python twin of the INSERT ... SELECT in bench/growth.py)."""
    identity = dict(zip(CLONE_COLUMNS, clone_identity(template, 0, serial), strict=True))
    row = dict(template.row)
    row.update({name: identity[name] for name in CLONE_COLUMNS[1:7]})
    observed = template.finding.observed_at
    row["first_seen"] = min(observed, now) if observed else now
    for name in ("last_seen", "created_at", "updated_at"):
        row[name] = now
    aliases = {(identity["alias_hash"], identity["alias"])} if identity["alias"] else set()
    return row, aliases


def verify_clones(templates: list[Template], payloads: list[dict[str, Any]], weights: ScoringWeights) -> None:
    """Ingest a few cloned findings with the service's own ``ingest.ingest`` (scratch SQLite) and check
    that ``clone_row`` gives the same findings row, alias rows and a single 'created' event."""
    now = datetime.now(UTC)
    serials = range(10**8, 10**8 + len(templates), max(1, len(templates) // 9))
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-check-") as scratch:
        engine = create_db_engine(load_settings(database_url=f"sqlite:///{Path(scratch) / 'check.db'}"))
        try:
            upgrade(engine)
            clones = [clone_finding(payloads[s % len(payloads)], s) for s in serials]
            valid, failed = validate_items(clones)
            if failed:
                raise AssertionError(f"a cloned finding is invalid: {failed[0]}")
            with unit_of_work(engine) as session:
                ingest.ingest(session, valid, ACTOR, weights, now=now)
            with unit_of_work(engine) as session:
                for serial in serials:
                    expected, aliases = clone_row(templates[serial % len(templates)], serial, now)
                    stored = (
                        session.execute(
                            select(FINDINGS_TABLE).where(
                                FINDINGS_TABLE.c.fingerprint == expected["fingerprint"]
                            )
                        )
                        .one()
                        ._mapping
                    )
                    differs = [
                        name
                        for name in FINDING_COLUMNS
                        if name != "id"
                        and (orjson.loads(expected[name]) if name in JSON_COLUMNS else expected[name])
                        != stored[name]
                    ]
                    stored_aliases = {
                        (row.alias_hash, row.alias)
                        for row in session.execute(
                            select(ALIASES_TABLE).where(ALIASES_TABLE.c.finding_id == stored["id"])
                        )
                    }
                    kinds = [
                        row.kind
                        for row in session.execute(
                            select(EVENTS_TABLE).where(EVENTS_TABLE.c.finding_id == stored["id"])
                        )
                    ]
                    if differs or stored_aliases != aliases or kinds != ["created"]:
                        raise AssertionError(
                            "bulk-loaded rows would differ from what the service stores: "
                            f"columns {differs}, aliases {sorted(stored_aliases)} vs {sorted(aliases)}, "
                            f"events {kinds}; update bench/rows.py"
                        )
        finally:
            engine.dispose()


def _payloads_and_rows_chunk(args: tuple[int, int, int, datetime]) -> tuple[bytes, bytes]:
    count, seed, start, now = args
    payloads = list(findings(count, seed, start))
    templates = build_rows(payloads, load_settings().scoring, now)
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
