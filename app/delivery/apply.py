"""``tocsin apply``: make the database's routing configuration what a file says, in one transaction.

The whole file is checked first (schema, names, references, channel options) against the database as it
is; only then is the diff computed and applied, through the same audited functions as the API (actor
``cli:apply``). Applying the same file twice changes nothing. Without ``--prune``, what the file does not
mention is kept; with it, teams, channels and rules the file no longer has are deleted and file-made
silences it no longer has are expired. Rules the file lists come first, in its order; rules kept because
the file does not mention them (no ``--prune``) follow, in their current order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.clock import utcnow
from app.config_file import SILENCE_KEY_PREFIX, ConfigError, Document, FileSilence
from app.errors import AppError
from app.repositories import routing as repo
from app.routing_config import (
    RESERVED_RULE_NAMES,
    Actor,
    channel_spec,
    check_channel,
    create_channel,
    create_rule,
    create_silence,
    create_team,
    delete_channel,
    delete_rule,
    delete_team,
    expire_silence,
    reorder_rules,
    replace_channel,
    replace_rule,
    replace_silence,
    replace_team,
    rule_spec,
    silence_summary,
    team_spec,
)

ACTOR = Actor("cli:apply")


@dataclass
class Change:
    op: Literal["+", "~", "-"]
    kind: str
    name: str
    details: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{self.op} {self.kind} {self.name}"
        return f"{head}: {'; '.join(self.details)}" if self.details else head


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``policy.group_wait: '30s' -> '1m'`` for each leaf that differs."""
    old, new = _flat(before), _flat(after)
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _dump(spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = spec.model_dump(mode="json", by_alias=True)
    return result


def _check(session: Session, document: Document, prune: bool) -> None:
    """Everything that needs more than one entry, or the database, to check; all problems at once."""
    config, problems = document.config, []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(document.where(loc, message))

    sections: dict[str, list[str]] = {
        "teams": [team.name for team in config.teams],
        "channels": [channel.name for channel in config.channels],
        "rules": [rule.name for rule in config.rules],
    }
    for section, names in sections.items():
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first:
                problem((section, index, "name"), f"{name!r} is also {section}[{first[name]}]")
            first.setdefault(name, index)
    silence_keys: dict[str, int] = {}
    for index, silence in enumerate(config.silences):
        key = silence.key()
        if key in silence_keys:
            problem(
                ("silences", index), f"the same silence as silences[{silence_keys[key]}] (give each an id)"
            )
        silence_keys.setdefault(key, index)
    defaults = [index for index, team in enumerate(config.teams) if team.default]
    for index in defaults[1:]:
        problem(("teams", index, "default"), f"only one team can be the default (teams[{defaults[0]}] is)")
    teams = {team.name for team in config.teams}
    if not prune:
        teams |= {row.name for row in repo.teams(session)}
    for index, channel in enumerate(config.channels):
        if channel.team not in teams:
            problem(("channels", index, "team"), f"no team named {channel.team!r}")
        try:
            check_channel(channel)
        except AppError as exc:
            loc = tuple(int(p) if p.isdigit() else p for p in (exc.field or "options").split("."))
            problem(("channels", index, *loc), exc.message)
    for index, rule in enumerate(config.rules):
        if rule.team is not None and rule.team not in teams:
            problem(("rules", index, "team"), f"no team named {rule.team!r}")
        if rule.name in RESERVED_RULE_NAMES:
            problem(("rules", index, "name"), f"{rule.name!r} is reserved; pick another rule name")
    if problems:
        raise ConfigError(problems)


def _silence_fields(silence: FileSilence, current: dict[str, Any] | None) -> dict[str, Any]:
    """The file's silence in the shape of ``silence_summary``; omitted times and author keep their value."""
    spec = silence.spec()
    wanted = {
        "match": spec.match.model_dump(mode="json", exclude_none=True),
        "finding_id": spec.finding_id,
        "ends_at": spec.ends_at.astimezone(utcnow().tzinfo).isoformat(),
        "reason": spec.reason,
    }
    if spec.starts_at is not None:
        wanted["starts_at"] = spec.starts_at.astimezone(utcnow().tzinfo).isoformat()
    if spec.created_by is not None:
        wanted["created_by"] = spec.created_by
    base = dict(current or {})
    base.update(wanted)
    return base


def plan(session: Session, document: Document, prune: bool) -> list[Change]:
    """What applying the file would change, in the order it is applied."""
    config, changes = document.config, []
    teams = {row.name: row for row in repo.teams(session)}
    for team in config.teams:
        if team.name not in teams:
            changes.append(Change("+", "team", team.name))
        elif details := field_changes(_dump(team_spec(teams[team.name])), _dump(team)):
            changes.append(Change("~", "team", team.name, details))
    new_default = next((team.name for team in config.teams if team.default), None)
    listed = {team.name for team in config.teams}
    for name, row in teams.items():
        if row.is_default and new_default not in (None, name) and name not in listed and not prune:
            changes.append(Change("~", "team", name, [f"default: True -> False (moves to {new_default})"]))
    names = repo.team_names_by_id(session)
    channels = {row.name: row for row in repo.channels(session)}
    for channel in config.channels:
        if channel.name not in channels:
            changes.append(Change("+", "channel", channel.name))
        else:
            current = channel_spec(channels[channel.name], names[channels[channel.name].team_id])
            if details := field_changes(_dump(current), _dump(channel)):
                changes.append(Change("~", "channel", channel.name, details))
    rules = {row.name: row for row in repo.rules(session)}
    for rule in config.rules:
        if rule.name not in rules:
            changes.append(Change("+", "rule", rule.name))
        elif details := field_changes(_dump(rule_spec(rules[rule.name])), _dump(rule)):
            changes.append(Change("~", "rule", rule.name, details))
    if prune:
        file_rules = {rule.name for rule in config.rules}
        file_channels = {channel.name for channel in config.channels}
        changes += [Change("-", "rule", name) for name in rules if name not in file_rules]
        changes += [Change("-", "channel", name) for name in channels if name not in file_channels]
        changes += [Change("-", "team", name) for name in teams if name not in listed]
    current_order = list(rules)
    final_order = [rule.name for rule in config.rules]
    if not prune:
        final_order += [name for name in current_order if name not in final_order]
    # Creating appends and deleting closes the gap: the order those alone would leave.
    after_changes = [name for name in current_order if name in final_order]
    after_changes += [name for name in final_order if name not in rules]
    if after_changes != final_order:
        changes.append(
            Change("~", "rules", "order", [f"{', '.join(current_order)} -> {', '.join(final_order)}"])
        )
    changes += _plan_silences(session, config.silences, prune)
    return changes


def _plan_silences(session: Session, silences: list[FileSilence], prune: bool) -> list[Change]:
    now, changes = utcnow(), []
    keys = {silence.key() for silence in silences}
    for silence in silences:
        row = repo.silence_by_id(session, silence.key())
        if row is None:
            if silence.ends_at > now:
                changes.append(Change("+", "silence", silence.key(), [silence.reason]))
        elif repo.silence_state(row, now) != "expired":
            current = silence_summary(row)
            if details := field_changes(current, _silence_fields(silence, current)):
                changes.append(Change("~", "silence", silence.key(), details))
    if prune:
        for row in repo.silences(session, now):
            managed = row.id.startswith(SILENCE_KEY_PREFIX) and row.id not in keys
            if managed and repo.silence_state(row, now) != "expired":
                changes.append(Change("-", "silence", row.id, ["expire"]))
    return changes


def apply(
    session: Session, document: Document, *, prune: bool = False, dry_run: bool = False
) -> list[Change]:
    """Check the file, then (unless ``dry_run``) make every change in ``session``'s transaction."""
    _check(session, document, prune)
    changes = plan(session, document, prune)
    if dry_run or not changes:
        return changes
    config = document.config
    teams = {team.name: team for team in config.teams}
    channels = {channel.name: channel for channel in config.channels}
    rules = {rule.name: rule for rule in config.rules}
    silences = {silence.key(): silence for silence in config.silences}
    for change in changes:
        match (change.op, change.kind):
            case ("+", "team"):
                create_team(session, teams[change.name], ACTOR)
            case ("~", "team") if change.name in teams:  # else: the default flag moved away from it
                replace_team(session, change.name, teams[change.name], ACTOR)
            case ("+", "channel"):
                create_channel(session, channels[change.name], ACTOR)
            case ("~", "channel"):
                replace_channel(session, change.name, channels[change.name], ACTOR)
            case ("+", "rule"):
                create_rule(session, rules[change.name], ACTOR)
            case ("~", "rule"):
                replace_rule(session, change.name, rules[change.name], ACTOR)
            case ("-", "rule"):
                delete_rule(session, change.name, ACTOR)
            case ("-", "channel"):
                delete_channel(session, change.name, ACTOR)
            case ("-", "team"):
                delete_team(session, change.name, ACTOR)
            case ("~", "rules"):
                order = [rule.name for rule in config.rules]
                order += [row.name for row in repo.rules(session) if row.name not in order]
                reorder_rules(session, order, ACTOR)
            case (_, "silence"):
                _apply_silence(session, change, silences.get(change.name))
    return changes


def _apply_silence(session: Session, change: Change, silence: FileSilence | None) -> None:
    if change.op == "-" or silence is None:
        expire_silence(session, change.name, ACTOR)
        return
    spec = silence.spec()
    if change.op == "+":
        if spec.created_by is None:
            spec = spec.model_copy(update={"created_by": ACTOR.name})
        create_silence(session, spec, ACTOR, silence_id=change.name)
    else:
        replace_silence(session, change.name, spec, ACTOR)
