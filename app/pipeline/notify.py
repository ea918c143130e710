"""From what a batch changed to who owns each finding and which notifications to queue.

Called by ``ingest.py`` (inside the batch's transaction, so the intents are committed with the finding
changes that cause them: the outbox) and by the reminder sweep. Routing itself is the pure ``route``
stage; this module only turns lifecycle events into notification events and routes into intents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.pipeline import route
from app.pipeline.route import Facts, Route, RoutingTable
from app.repositories.outbox import Intent

# Lifecycle event (finding_events.kind) -> the notification event it raises. "updated" and "seen" raise
# nothing by themselves; they may escalate (score crossed the policy's threshold upwards).
NOTIFYING_LIFECYCLE: dict[str, route.NotificationEvent] = {
    "created": "new",
    "regressed": "regressed",
    "resolved_by_source": "resolved",
    "resolved_by_rescan": "resolved",
}


STATEFUL_EVENTS: dict[str, frozenset[str]] = {
    "jira": frozenset({"resolved", "regressed"}),
    "github": frozenset({"resolved", "regressed"}),
    "pagerduty": frozenset({"resolved", "regressed", "acknowledged"}),
}
"""Channels that keep state per finding (a ticket, an incident) and the lifecycle events they are told
whatever the policy's ``events`` say, so the ticket closes and reopens (the incident is acknowledged and
resolved) with its finding."""


@dataclass(frozen=True, slots=True)
class Change:
    """One finding touched by a batch: its facts after the change and what happened to it."""

    finding_id: str
    facts: Facts
    event: route.NotificationEvent | None = None
    previous_score: float | None = None


def owner(routes: Sequence[Route]) -> tuple[str | None, str | None]:
    """(team, routed_by) stored on the finding: the first route's."""
    return (routes[0].team, routes[0].routed_by) if routes else (None, None)


def escalated(change: Change, policy_threshold: float) -> bool:
    previous = change.previous_score
    return previous is not None and previous < policy_threshold <= change.facts.score


def intents_for(change: Change, routes: Sequence[Route], table: RoutingTable) -> list[Intent]:
    """The intents one change raises: per route (a finding matched with ``continue`` has several), the
    events its policy wants, on every enabled channel of the route's team."""
    intents: list[Intent] = []
    if change.facts.status != "open" and change.event not in ("resolved", "acknowledged"):
        return intents  # a suppressed / acknowledged finding changing does not notify
    for found in routes:
        events: list[route.NotificationEvent] = []
        if change.event is not None:
            events.append(change.event)
        elif escalated(change, found.policy.escalation_score):
            events.append("escalated")
        channels = table.channels_of(found.team)
        for event in events:
            targets = channels
            if route.wants(found.policy, event, change.facts) is not None:
                targets = [c for c in channels if event in STATEFUL_EVENTS.get(c.kind, ())]
                # Thresholds (severity, score) still apply; only the policy's list of events is bypassed.
                widened = found.policy.model_copy(update={"events": [*found.policy.events, event]})
                if targets and route.wants(widened, event, change.facts) is not None:
                    targets = []
            if not targets:
                continue
            key, labels = route.group_key(change.facts, found)
            intents.extend(
                Intent(
                    finding_id=change.finding_id,
                    channel_id=channel.id,
                    team=found.team,
                    event=event,
                    routed_by=found.routed_by,
                    group_key=key,
                    group_labels=labels,
                    group_wait=found.policy.group_wait,
                    group_interval=found.policy.group_interval,
                )
                for channel in targets
            )
    return intents


def plan(changes: Iterable[Change], table: RoutingTable) -> tuple[dict[str, Sequence[Route]], list[Intent]]:
    """Routes per finding id and the intents of every change (one routing pass per finding)."""
    routes_by_id: dict[str, Sequence[Route]] = {}
    intents: list[Intent] = []
    for change in changes:
        routes = route.route(change.facts, table)
        routes_by_id[change.finding_id] = routes
        intents.extend(intents_for(change, routes, table))
    return routes_by_id, intents
