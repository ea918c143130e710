"""Routing: who owns a finding, how it is grouped, and whether an event about it should notify now.

Pure over a ``RoutingTable`` loaded once per batch (``app.pipeline.routing_table``): ownership
rules in order (first match wins unless ``continue``), the default team, policies (the team's, with the
rule's override), group keys, silences and quiet hours. Nothing here reads the clock: callers pass
``now``, so ingest, the dispatcher and the explain API agree on one instant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from app.contracts import SEVERITY_MIN_SCORE, NotificationEvent, severity_label
from app.pipeline.route_match import (
    Facts,
    match_reasons,
    matches,
    mismatches,
    number,
    severity_text,
)
from app.pipeline.route_spec import Matchers, Policy, PolicyOverride, QuietHours, RuleSpec, TeamSpec

if TYPE_CHECKING:
    from app.models.routing import NotificationChannel, RoutingRule, Silence, Team

__all__ = [
    "CRITICAL",
    "ActiveSilence",
    "ChannelRef",
    "Facts",
    "NotificationEvent",
    "Route",
    "RoutingTable",
    "group_key",
    "held_by_quiet_hours",
    "match_reasons",
    "matches",
    "mismatches",
    "quiet_hours_end",
    "route",
    "silence_for",
    "wants",
]

CRITICAL = SEVERITY_MIN_SCORE[severity_label(100.0)]
"""Severity from which quiet hours never hold a finding (90)."""

MAX_GROUP_KEY = 512


@dataclass(frozen=True)
class ChannelRef:
    id: str
    name: str
    team: str
    kind: str
    enabled: bool = True


@dataclass(frozen=True)
class ActiveSilence:
    id: str
    matchers: Matchers
    finding_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str | None = None

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, facts: Facts) -> bool:
        """Matches the finding (its id when the silence names one, and its matchers); ignores time."""
        if self.finding_id is not None and self.finding_id != facts.finding_id:
            return False
        return matches(self.matchers, facts)


def apply_override(policy: Policy, override: PolicyOverride) -> Policy:
    """The policy with the override's set fields. Validated values are copied as they are (not through
    ``model_dump``, whose serialized durations such as ``"1m"`` ``model_copy`` would not parse back)."""
    changes = {
        name: value for name in type(override).model_fields if (value := getattr(override, name)) is not None
    }
    return policy.model_copy(update=changes) if changes else policy


@dataclass(frozen=True)
class RoutingTable:
    """Everything routing needs, loaded once per batch; ``rules`` in evaluation order."""

    teams: Mapping[str, TeamSpec]
    rules: Sequence[RuleSpec]
    channels: Sequence[ChannelRef]
    silences: Sequence[ActiveSilence] = ()
    _by_team: dict[str, list[ChannelRef]] = field(init=False, repr=False, compare=False)
    _policies: dict[tuple[str, str | None], Policy] = field(init=False, repr=False, compare=False)
    _default: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_team: dict[str, list[ChannelRef]] = {}
        for channel in self.channels:
            if channel.enabled:
                by_team.setdefault(channel.team, []).append(channel)
        object.__setattr__(self, "_by_team", by_team)
        object.__setattr__(self, "_policies", {})
        default = next((name for name, team in self.teams.items() if team.default), None)
        object.__setattr__(self, "_default", default)

    @property
    def default_team(self) -> str | None:
        return self._default

    def channels_of(self, team: str) -> list[ChannelRef]:
        """The team's enabled channels."""
        return list(self._by_team.get(team, ()))

    def policy_for(self, team: str, rule: RuleSpec | None = None) -> Policy:
        """The team's policy with the rule's override applied (computed once per team and rule)."""
        key = (team, rule.name if rule is not None else None)
        policy = self._policies.get(key)
        if policy is None:
            spec = self.teams.get(team)
            policy = spec.policy if spec is not None else Policy()
            if rule is not None and rule.policy is not None:
                policy = apply_override(policy, rule.policy)
            self._policies[key] = policy
        return policy

    @classmethod
    def from_rows(
        cls,
        teams: Sequence[Team],
        channels: Sequence[NotificationChannel],
        rules: Sequence[RoutingRule],
        silences: Sequence[Silence],
    ) -> RoutingTable:
        """From the rows of ``app.models.routing`` (rules are ordered by ``position`` here)."""
        team_specs = {
            t.name: TeamSpec(
                name=t.name,
                description=t.description,
                timezone=t.timezone,
                quiet_hours=QuietHours.model_validate(t.quiet_hours) if t.quiet_hours else None,
                policy=Policy.model_validate(t.policy or {}),
                default=t.is_default,
            )
            for t in teams
        }
        team_names = {t.id: t.name for t in teams}
        channel_refs = [
            ChannelRef(
                id=c.id,
                name=c.name,
                team=team_names.get(c.team_id, c.team_id),
                kind=c.kind,
                enabled=c.enabled,
            )
            for c in channels
        ]
        rule_specs = [
            RuleSpec(
                name=r.name,
                match=Matchers.model_validate(r.matchers or {}),
                team=r.team,
                team_from_tag=r.team_from_tag,
                continue_=r.continue_matching,
                policy=PolicyOverride.model_validate(r.policy) if r.policy else None,
                enabled=r.enabled,
            )
            for r in sorted(rules, key=lambda r: r.position)
        ]
        active = [
            ActiveSilence(
                id=s.id,
                matchers=Matchers.model_validate(s.matchers or {}),
                finding_id=s.finding_id,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                reason=s.reason,
                created_by=s.created_by,
            )
            for s in silences
        ]
        return cls(teams=team_specs, rules=rule_specs, channels=channel_refs, silences=active)


@dataclass(frozen=True)
class Route:
    team: str
    routed_by: str
    """``rule:<name>``, ``tag:<key>`` (the rule's ``team_from_tag`` named the team) or ``default``."""
    policy: Policy
    rule: str | None


def team_of_rule(rule: RuleSpec, facts: Facts, table: RoutingTable) -> tuple[str, str] | None:
    """(team, routed_by) for a rule that matched, or None when it names no team for this finding."""
    if rule.team_from_tag is not None:
        value = facts.tags.get(rule.team_from_tag)
        if value:
            team = value.strip().lower()
            if team in table.teams:
                return team, f"tag:{rule.team_from_tag}"
    if rule.team is not None:
        return rule.team, f"rule:{rule.name}"
    return None


def route(facts: Facts, table: RoutingTable) -> list[Route]:
    """The teams a finding goes to; the first is its owner (stored on the finding). Empty when no rule
    routes it and there is no default team."""
    routes: list[Route] = []
    for rule in table.rules:
        if not rule.enabled or not matches(rule.match, facts):
            continue
        owner = team_of_rule(rule, facts, table)
        if owner is None:
            continue
        team, routed_by = owner
        if all(r.team != team for r in routes):
            routes.append(Route(team, routed_by, table.policy_for(team, rule), rule.name))
        if not rule.continue_:
            break
    if not routes and table.default_team is not None:
        routes.append(Route(table.default_team, "default", table.policy_for(table.default_team), None))
    return routes


def _label(name: str, facts: Facts, route: Route) -> str:
    if name == "team":
        return route.team
    if name == "severity":
        return severity_label(facts.severity).value
    if name == "finding":
        return facts.finding_id or ""
    value = getattr(facts, name)
    return "" if value is None else str(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def group_key(facts: Facts, route: Route) -> tuple[str, dict[str, str]]:
    """(key, labels) from the policy's ``group_by``: findings sharing a key go out in one message.

    The key is ``name=value`` pairs joined by ``|`` (``|`` in values escaped), at most 512 characters: a
    longer one keeps its head and ends with a hash of the whole key.
    """
    labels = {name: _label(name, facts, route) for name in route.policy.group_by}
    key = "|".join(f"{name}={_escape(value)}" for name, value in labels.items())
    if len(key) > MAX_GROUP_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        key = f"{key[: MAX_GROUP_KEY - len(digest) - 1]}#{digest}"
    return key, labels


def wants(policy: Policy, event: str, facts: Facts) -> str | None:
    """None when ``event`` about this finding should notify under ``policy``, else why it should not."""
    if event not in policy.events:
        return f"event {event!r} is not in this policy's events [{', '.join(policy.events)}]"
    if event != "resolved" and facts.status in ("suppressed", "false_positive"):
        return f"the finding is {facts.status}"
    floor = SEVERITY_MIN_SCORE[policy.min_severity]
    if facts.severity < floor:
        return f"severity {severity_text(facts.severity)} below min_severity {policy.min_severity.value}"
    if facts.score < policy.min_score:
        return f"score {number(facts.score)} below min_score {number(policy.min_score)}"
    if event == "reminder":
        if facts.status != "open":
            return f"reminders are only for open findings; this one is {facts.status}"
        reminder_floor = SEVERITY_MIN_SCORE[policy.reminder_min_severity]
        if facts.severity < reminder_floor:
            return (
                f"reminders only at or above {policy.reminder_min_severity.value}; "
                f"severity {severity_text(facts.severity)}"
            )
    return None


def silence_for(facts: Facts, silences: Sequence[ActiveSilence], now: datetime) -> ActiveSilence | None:
    """The active silence covering this finding (the one that ends last when several do), or None."""
    found: ActiveSilence | None = None
    for silence in silences:
        if (
            (found is None or silence.ends_at > found.ends_at)
            and silence.active_at(now)
            and silence.covers(facts)
        ):
            found = silence
    return found


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _window(quiet: QuietHours, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The quiet window starting on ``day`` (local), in UTC; None when ``days`` excludes that day."""
    if quiet.days is not None and _WEEKDAYS[day.weekday()] not in quiet.days:
        return None
    start = datetime.combine(day, quiet.start, tzinfo=zone)
    end_day = day if quiet.end > quiet.start else day + timedelta(days=1)
    end = datetime.combine(end_day, quiet.end, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def quiet_hours_end(team: TeamSpec, now: datetime) -> datetime | None:
    """When the team's current quiet window ends (UTC), or None when it is not in quiet hours at ``now``.

    Windows are wall-clock times in the team's timezone (so they follow DST); one that starts before
    midnight and ends after belongs to the day it starts on (``days``)."""
    quiet = team.quiet_hours
    if quiet is None:
        return None
    zone = ZoneInfo(team.timezone)
    today = now.astimezone(zone).date()
    end: datetime | None = None
    for day in (today - timedelta(days=1), today):
        window = _window(quiet, day, zone)
        if window is not None and window[0] <= now < window[1]:
            end = window[1] if end is None else max(end, window[1])
    return end


def held_by_quiet_hours(team: TeamSpec, facts: Facts, now: datetime) -> datetime | None:
    """Until when quiet hours hold this finding's notification; critical findings are never held."""
    if facts.severity >= CRITICAL:
        return None
    return quiet_hours_end(team, now)
