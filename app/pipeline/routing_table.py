"""The routing snapshot a batch (or an explain, or a dispatcher round) runs on: config rows -> RoutingTable.

Loaded per batch, never cached between batches, so a rule changed through the API applies to the next batch
on every replica.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.pipeline.route import RoutingTable
from app.repositories.routing_snapshot import load_routing_rows


def load_routing_table(session: Session, now: datetime) -> RoutingTable:
    rows = load_routing_rows(session, now)
    return RoutingTable.from_rows(rows.teams, rows.channels, rows.rules, rows.silences)
