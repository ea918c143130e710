"""What to do with each pending notification of a claimed group at send time: send, hold or drop.

Decided when the group is due, not when the intent was queued, because silences, quiet hours and the
finding's status change in between. Pure over the loaded rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.pipeline.route import Facts, RoutingTable, held_by_quiet_hours, silence_for
from app.repositories import outbox
from app.repositories.outbox_sends import ClaimedGroup, Hold

CLOSED_STATUSES = frozenset({"resolved", "suppressed", "false_positive"})


@dataclass
class SendPlan:
    send: list[dict[str, Any]] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    drops: list[tuple[str, str]] = field(default_factory=list)


def plan_group(
    claimed: ClaimedGroup, findings: Mapping[str, Mapping[str, Any]], table: RoutingTable, now: datetime
) -> SendPlan:
    """Decide, per pending notification at send time: send, hold (silence, quiet hours) or drop."""
    plan = SendPlan()
    channel = claimed.channel
    group_key = str(claimed.group["group_key"])
    in_digest = group_key.startswith(outbox.DIGEST_PREFIX)
    for note in claimed.notifications:
        finding = findings.get(note["finding_id"])
        if channel is None or not channel.get("enabled", True):
            plan.drops.append((note["id"], "the channel was disabled or deleted before the message went out"))
            continue
        if finding is None:
            plan.drops.append((note["id"], "the finding no longer exists"))
            continue
        status = str(finding["status"])
        if status in CLOSED_STATUSES and note["event"] != "resolved":
            plan.drops.append((note["id"], f"the finding is {status.replace('_', ' ')}: nothing to tell"))
            continue
        facts = Facts.from_row(finding)
        silence = silence_for(facts, table.silences, now)
        if silence is not None:
            reason = f"silenced by {silence.id}: {silence.reason} until {silence.ends_at.isoformat()}"
            plan.holds.append(Hold(note["id"], reason, silence.ends_at, silence_id=silence.id))
            continue
        team = table.teams.get(str(note["team"]))
        quiet_until = held_by_quiet_hours(team, facts, now) if team is not None else None
        if quiet_until is not None:
            reason = (
                f"quiet hours of team {team.name if team else note['team']} until {quiet_until.isoformat()}"
            )
            digest_team = None if in_digest else str(note["team"])
            plan.holds.append(Hold(note["id"], reason, quiet_until, digest_team=digest_team))
            continue
        plan.send.append(note)
    return plan
