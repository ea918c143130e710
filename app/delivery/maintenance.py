"""Periodic upkeep run by every API process: ending suppressions whose time is up, and queueing reminders
for findings still open after their team's ``repeat_interval``.

Idempotent and safe to run on every replica at once (see repositories.triage and delivery.reminders).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from app.clock import utcnow
from app.db import unit_of_work
from app.delivery.reminders import enqueue_reminders
from app.repositories import triage

log = logging.getLogger("tocsin.maintenance")
ACTOR = "tocsin:maintenance"


def run_once(engine: Engine) -> int:
    """One pass; returns how many findings were reopened."""
    with unit_of_work(engine) as session:
        reopened = triage.reopen_expired_suppressions(session, utcnow(), ACTOR)
    if reopened:
        log.info("reopened %d finding(s) whose suppression expired", len(reopened))
    with unit_of_work(engine) as session:
        reminders = enqueue_reminders(session, utcnow())
    if reminders:
        log.info("queued %d reminder notification(s)", reminders)
    return len(reopened)


async def run_forever(engine: Engine, interval_seconds: float) -> None:
    """Runs until cancelled; a failed pass (database down) is logged and retried next interval."""
    while True:
        try:
            await asyncio.to_thread(run_once, engine)
        except Exception as exc:  # the database may be down or not migrated yet: say so in one line
            log.warning(
                "maintenance pass failed (%s: %s); retrying in %ss",
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
                interval_seconds,
            )
        await asyncio.sleep(interval_seconds)
