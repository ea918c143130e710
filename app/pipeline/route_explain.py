"""Why a finding goes where it goes: every rule tried and why it did or did not match, the team, the
channels, the group key, and for each channel whether it would be notified now and why not.

The answer of ``POST /v1/routing/explain`` and ``GET /v1/findings/{id}/routing``. It runs the same
functions as ingest (``route``, ``wants``, ``silence_for``, ``held_by_quiet_hours``, ``group_key``) on
the same ``RoutingTable``, so what it says is what happens. Pure: the caller loads the table and the
finding's notification history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from app.contracts import severity_label
from app.pipeline.route import (
    ActiveSilence,
    Facts,
    Route,
    RoutingTable,
    group_key,
    held_by_quiet_hours,
    route,
    silence_for,
    team_of_rule,
    wants,
)
from app.pipeline.route_explain_models import (
    ChannelVerdict,
    Explanation,
    FactsOut,
    NotificationHistory,
    RouteExplanation,
    RuleTrial,
    SilenceOut,
)
from app.pipeline.route_match import match_reasons, number
from app.pipeline.route_spec import Policy, RuleSpec, format_duration

__all__ = ["Explanation", "NotificationHistory", "explain", "policy_summary"]


def _facts_out(facts: Facts) -> FactsOut:
    return FactsOut(
        finding_id=facts.finding_id,
        source=facts.source,
        type=facts.type,
        severity=facts.severity,
        severity_label=severity_label(facts.severity).value,
        score=facts.score,
        status=facts.status,
        account_id=facts.account_id,
        region=facts.region,
        resource_type=facts.resource_type,
        resource_id=facts.resource_id,
        repository=facts.repository,
        path=facts.path,
        tags=dict(facts.tags),
    )


def policy_summary(policy: Policy) -> str:
    return (
        f"events {', '.join(policy.events)}; at least {policy.min_severity.value}, "
        f"score {number(policy.min_score)}; grouped by {', '.join(policy.group_by)}; "
        f"group_wait {format_duration(policy.group_wait)}, group_interval "
        f"{format_duration(policy.group_interval)}, repeat_interval {format_duration(policy.repeat_interval)}"
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment.utcoffset() is not None else moment.isoformat()


def _trial(
    position: int,
    rule: RuleSpec,
    outcome: str,
    reasons: list[str],
    team: str | None = None,
    by: str | None = None,
) -> RuleTrial:
    return RuleTrial.model_validate(
        {
            "position": position,
            "name": rule.name,
            "continue": rule.continue_,
            "outcome": outcome,
            "matched": outcome.startswith("matched"),
            "reasons": reasons,
            "team": team,
            "routed_by": by,
        }
    )


def _trials(facts: Facts, table: RoutingTable) -> list[RuleTrial]:
    trials: list[RuleTrial] = []
    stopped_by: str | None = None
    routed: set[str] = set()
    for position, rule in enumerate(table.rules, start=1):
        trial = partial(_trial, position, rule)
        if not rule.enabled:
            trials.append(trial("disabled", ["disabled"]))
            continue
        if stopped_by is not None:
            reason = f"rule {stopped_by!r} matched first and has no continue"
            trials.append(trial("not tried", [reason]))
            continue
        matched, reasons = match_reasons(rule.match, facts)
        if not matched:
            trials.append(trial("no match", reasons))
            continue
        owner = team_of_rule(rule, facts, table)
        if owner is None:
            value = facts.tags.get(rule.team_from_tag or "")
            reasons.append(
                f"tag {rule.team_from_tag} is missing and the rule has no fallback team"
                if not value
                else f"tag {rule.team_from_tag}={value!r} names no team and the rule has no fallback team"
            )
            trials.append(trial("matched, no team", reasons))
            continue
        team, routed_by = owner
        if routed_by.startswith("tag:"):
            reasons.append(f"the team comes from tag {rule.team_from_tag}")
        elif rule.team_from_tag is not None:
            value = facts.tags.get(rule.team_from_tag)
            shown = "is missing" if not value else f"is {value!r}, which names no team"
            reasons.append(f"tag {rule.team_from_tag} {shown}: fallback team {team}")
        if team in routed:
            reasons.append(f"team {team} already routed by an earlier rule")
        routed.add(team)
        trials.append(trial("matched", reasons, team, routed_by))
        if not rule.continue_:
            stopped_by = rule.name
    return trials


def _history_verdict(
    event: str, channel: str, history: Sequence[NotificationHistory]
) -> tuple[bool, str] | None:
    if event == "reminder":
        return None
    for item in history:
        if item.channel != channel or item.event != event:
            continue
        if item.status == "sent" and item.sent_at is not None:
            return False, f"already notified at {_when(item.sent_at)} via {channel}"
        if item.status == "pending":
            due = f" at {_when(item.due_at)}" if item.due_at is not None else ""
            return True, f"already queued: sends{due} with its group"
        if item.status == "held":
            return False, f"held: {item.held_reason or 'waiting'}"
    return None


def _verdicts(
    facts: Facts,
    found: Route,
    table: RoutingTable,
    event: str,
    now: datetime,
    silence: ActiveSilence | None,
    history: Sequence[NotificationHistory],
) -> list[ChannelVerdict]:
    verdicts: list[ChannelVerdict] = []
    refused = wants(found.policy, event, facts)
    team = table.teams.get(found.team)
    quiet_until = held_by_quiet_hours(team, facts, now) if team is not None else None
    for channel in table.channels_of(found.team):
        until: datetime | None = None
        past = _history_verdict(event, channel.name, history)
        if past is not None:
            would, why = past
        elif refused is not None:
            would = False
            why = (
                refused
                if refused.startswith(("event", "the finding", "reminders"))
                else f"below threshold: {refused}"
            )
        elif silence is not None:
            would, until = False, silence.ends_at
            why = f"silenced by {silence.id} ({silence.reason}) until {_when(silence.ends_at)}"
        elif quiet_until is not None:
            would, until = False, quiet_until
            why = f"quiet hours until {_when(quiet_until)} (not critical)"
        else:
            wait = found.policy.group_wait
            would, why = (
                True,
                ("notifies now" if wait <= 0 else f"notifies after group_wait {format_duration(wait)}"),
            )
        verdicts.append(
            ChannelVerdict(
                channel=channel.name, kind=channel.kind, would_notify=would, why=why, held_until=until
            )
        )
    return verdicts


def explain(
    facts: Facts,
    table: RoutingTable,
    now: datetime,
    event: str = "new",
    history: Sequence[NotificationHistory] = (),
) -> Explanation:
    """Route ``facts`` through ``table`` at ``now`` for ``event``, saying why at every step."""
    routes = route(facts, table)
    silence = silence_for(facts, table.silences, now)
    explained: list[RouteExplanation] = []
    for index, found in enumerate(routes):
        key, labels = group_key(facts, found)
        explained.append(
            RouteExplanation(
                team=found.team,
                routed_by=found.routed_by,
                rule=found.rule,
                owner=index == 0,
                policy=policy_summary(found.policy),
                group_key=key,
                group_labels=labels,
                channels=_verdicts(facts, found, table, event, now, silence, history),
            )
        )
    trials = _trials(facts, table)
    silenced = (
        SilenceOut(
            id=silence.id,
            reason=silence.reason,
            created_by=silence.created_by,
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
        )
        if silence is not None
        else None
    )
    return Explanation(
        finding=_facts_out(facts),
        event=event,
        at=now,
        rules=trials,
        routes=explained,
        owner=routes[0].team if routes else None,
        silenced_by=silenced,
        would_notify=any(v.would_notify for r in explained for v in r.channels),
        summary=_summary(trials, explained, table, silence),
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(
    trials: list[RuleTrial],
    routes: list[RouteExplanation],
    table: RoutingTable,
    silence: ActiveSilence | None,
) -> list[str]:
    lines: list[str] = []
    total = len(trials)
    for trial in trials:
        if trial.outcome == "matched":
            reasons = "; ".join(trial.reasons)
            lines.append(f"Rule {trial.name!r} ({trial.position} of {total}) matched: {reasons}.")
        elif trial.outcome == "matched, no team":
            lines.append(f"Rule {trial.name!r} matched but routes nowhere: {trial.reasons[-1]}.")
    missed = sum(1 for t in trials if t.outcome == "no match")
    untried = [t for t in trials if t.outcome == "not tried"]
    disabled = sum(1 for t in trials if t.outcome == "disabled")
    counts: list[str] = []
    if missed:
        counts.append(f"{_plural(missed, 'rule')} did not match")
    if untried:
        stopper = untried[0].reasons[0].split("'")[1]
        counts.append(f"{_plural(len(untried), 'later rule')} not tried ({stopper!r} has no continue)")
    if disabled:
        counts.append(f"{_plural(disabled, 'rule')} disabled")
    if counts:
        lines.append("; ".join(counts).capitalize() + ".")
    if not total:
        lines.append("There are no routing rules.")
    if not routes:
        lines.append("No team: no rule matched and there is no default team, so nobody is notified.")
        return lines
    if routes[0].routed_by == "default":
        lines.append(f"No rule routed it: the default team {routes[0].team} owns it.")
    else:
        lines.append(f"Owner: team {routes[0].team} ({routes[0].routed_by}).")
    if len(routes) > 1:
        others = ", ".join(f"{r.team} ({r.routed_by})" for r in routes[1:])
        lines.append(f"Also routed to {others} (continue).")
    if silence is not None:
        lines.append(
            f"Silenced by {silence.id} ({silence.reason}, by {silence.created_by or 'unknown'}) "
            f"until {_when(silence.ends_at)}: stored and routed, not notified."
        )
    for found in routes:
        if found.team not in table.teams:
            lines.append(f"Team {found.team} is not defined; add it and a channel.")
        if not found.channels:
            lines.append(f"No channel for team {found.team}: nobody there is told.")
        for verdict in found.channels:
            if verdict.would_notify:
                how = (
                    verdict.why.removeprefix("notifies ")
                    if verdict.why.startswith("notifies ")
                    else f"({verdict.why})"
                )
                lines.append(
                    f"{verdict.channel} ({verdict.kind}) would be notified {how}, in group {found.group_key}."
                )
            else:
                lines.append(f"{verdict.channel} ({verdict.kind}) would not be notified: {verdict.why}.")
    return lines
