"""Transaction helpers: driver errors are SQLAlchemy errors, deadlocks are retried."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import new_id, utcnow
from app.db import run_transaction, unit_of_work
from app.repositories.bulk import bulk_insert
from app.repositories.findings import events_t, findings_t


def _finding_row(fid: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": fid, "fingerprint": fid, "source": "x", "type": "t", "title": "t", "severity": 1.0,
        "severity_label": "low", "tags": {}, "public": False, "references": [], "context": {},
        "content_hash": "h", "status": "open", "score": 1.0, "score_breakdown": {}, "occurrences": 1,
        "first_seen": now, "last_seen": now, "created_at": now, "updated_at": now,
    }  # fmt: skip


def test_bulk_driver_errors_surface_as_sqlalchemy_errors(engine: Engine) -> None:
    fid = new_id()
    with unit_of_work(engine) as session:
        bulk_insert(session, findings_t, [_finding_row(fid)])
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        bulk_insert(session, findings_t, [_finding_row(fid)])
    with pytest.raises(IntegrityError), unit_of_work(engine) as session:
        bulk_insert(session, events_t, [{"finding_id": "missing", "kind": "x", "actor": "a", "at": utcnow(),
                                         "from_status": None, "to_status": None, "note": None}])  # fmt: skip


def test_deadlock_victim_is_retried(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE: no deadlocks to retry")
    a, b = new_id(), new_id()
    with unit_of_work(engine) as session:
        bulk_insert(session, findings_t, [_finding_row(a), _finding_row(b)])
    other_holds_b = threading.Event()
    we_hold_a = threading.Event()
    attempts: list[int] = []

    def other() -> None:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SET LOCAL deadlock_timeout = '10s'"))  # we, not it, will be the victim
            conn.execute(text("SELECT 1 FROM findings WHERE id = :id FOR UPDATE"), {"id": b})
            other_holds_b.set()
            we_hold_a.wait(10)
            conn.execute(text("SELECT 1 FROM findings WHERE id = :id FOR UPDATE"), {"id": a})

    def work(session: Session) -> str:
        attempts.append(1)
        session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
        session.execute(text("SELECT 1 FROM findings WHERE id = :id FOR UPDATE"), {"id": a})
        if len(attempts) == 1:
            other_holds_b.wait(10)
            we_hold_a.set()
        session.execute(text("SELECT 1 FROM findings WHERE id = :id FOR UPDATE"), {"id": b})
        return "done"

    thread = threading.Thread(target=other)
    thread.start()
    assert run_transaction(engine, work, attempts=3) == "done"
    thread.join(15)
    assert len(attempts) == 2
