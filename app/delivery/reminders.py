"""Reminders: findings still open at or above a team's ``reminder_min_severity`` whose last notification
is older than the team's ``repeat_interval`` are queued again as ``reminder`` intents.

Runs from the maintenance loop on every replica; safe to run concurrently (an intent already pending for
the same finding, channel and event is not queued twice, and a finding with anything queued or sent within
the interval is not a candidate). Candidate selection uses the team's policy; a rule's own
``repeat_interval`` override applies to the grouping of the reminder, not to when it is due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.contracts import SEVERITY_MIN_SCORE
from app.pipeline import notify
from app.pipeline.route import Facts
from app.pipeline.routing_table import load_routing_table
from app.repositories import outbox, routing_facts

BATCH = 500


def enqueue_reminders(session: Session, now: datetime, limit: int = BATCH) -> int:
    """Queue the reminders due now (at most ``limit`` findings per team per call); returns how many
    intents were queued."""
    table = load_routing_table(session, now)
    queued = 0
    for name, team in table.teams.items():
        policy = team.policy
        if "reminder" not in policy.events:
            continue
        rows = routing_facts.reminder_candidates(
            session,
            name,
            SEVERITY_MIN_SCORE[policy.reminder_min_severity],
            now - timedelta(seconds=policy.repeat_interval),
            limit,
        )
        changes = [notify.Change(row["id"], Facts.from_row(row), event="reminder") for row in rows]
        _, intents = notify.plan(changes, table)
        queued += outbox.enqueue(session, intents, now)
    return queued
