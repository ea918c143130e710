"""Changes to the routing configuration, one object at a time: checked, applied and audited.

The API (``/v1/teams|channels|rules|silences``) and ``tocsin apply`` both call these functions, so a change
is refused for the same reason and leaves the same audit record whichever way it arrives. Rows and
validated specs (``app.pipeline.route_spec``) convert both ways here; nothing here commits.

Decisions: team names cannot change (rules refer to teams by name), a team still referenced by a channel
or a rule cannot be deleted (409 naming them), and marking a team ``default`` moves the flag from the
previous default team (audited on both). Expired silences are immutable (Alertmanager semantics).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import new_id, utcnow
from app.errors import ConflictError, NotFoundError, ValidationFailed
from app.models import NotificationChannel, RoutingRule, Silence, Team
from app.pipeline.route_spec import ChannelSpec, Matchers, RuleSpec, SilenceSpec, TeamSpec
from app.repositories import audit, outbox
from app.repositories import routing as repo

RESERVED_RULE_NAMES = frozenset({"order"})  # PUT /v1/rules/order would shadow PUT /v1/rules/{name}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change (a token name, or ``cli:apply``) and the request it came in, for the audit log."""

    name: str
    request_id: str | None = None


def _json(spec: BaseModel | None, *, exclude_none: bool = False) -> Any:
    return None if spec is None else spec.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def _audit(
    session: Session,
    by: Actor,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record(
        session,
        actor=by.name,
        action=action,
        target_type=action.split(".", 1)[0],
        target_id=target,
        before=before,
        after=after,
        request_id=by.request_id,
        at=utcnow(),
    )


def _insert(session: Session, row: Team | NotificationChannel | RoutingRule, what: str) -> None:
    try:  # a concurrent request may take the name between the check and this insert
        with session.begin_nested():
            repo.add(session, row)
    except IntegrityError as exc:
        raise ConflictError(f"a {what} named {row.name!r} already exists") from exc


def _same_name(url_name: str, body_name: str, what: str) -> None:
    if url_name != body_name:
        raise ValidationFailed(
            f"the body names {what} {body_name!r} but the URL names {url_name!r}; {what}s cannot be renamed "
            "(create the new one, move what refers to the old one, then delete it)",
            field="name",
        )


# Teams


def team_spec(row: Team) -> TeamSpec:
    return TeamSpec.model_validate(
        {
            "name": row.name,
            "description": row.description,
            "timezone": row.timezone,
            "quiet_hours": row.quiet_hours,
            "policy": row.policy,
            "default": row.is_default,
        }
    )


def get_team(session: Session, name: str) -> Team:
    row = repo.team_by_name(session, name)
    if row is None:
        raise NotFoundError(f"no team named {name!r}")
    return row


def _write_team(row: Team, spec: TeamSpec) -> None:
    row.description = spec.description
    row.timezone = spec.timezone
    row.quiet_hours = _json(spec.quiet_hours, exclude_none=True)
    row.policy = _json(spec.policy)
    row.is_default = spec.default
    row.updated_at = utcnow()


def _take_default(session: Session, row: Team, by: Actor) -> None:
    """At most one default team: the flag moves to ``row`` from whichever team had it."""
    for other in repo.default_teams(session):
        if other.id != row.id:
            other.is_default = False
            other.updated_at = utcnow()
            _audit(session, by, "team.updated", other.name, {"default": True}, {"default": False})
    session.flush()


def create_team(session: Session, spec: TeamSpec, by: Actor) -> Team:
    if repo.team_by_name(session, spec.name) is not None:
        raise ConflictError(f"a team named {spec.name!r} already exists")
    now = utcnow()
    row = Team(id=new_id(), name=spec.name, created_at=now, updated_at=now)
    _write_team(row, spec)
    _insert(session, row, "team")
    if spec.default:
        _take_default(session, row, by)
    _audit(session, by, "team.created", spec.name, None, _json(spec))
    return row


def replace_team(session: Session, name: str, spec: TeamSpec, by: Actor) -> Team:
    _same_name(name, spec.name, "team")
    row = get_team(session, name)
    before, after = _changed(_json(team_spec(row)), _json(spec))
    if not after:
        return row
    _write_team(row, spec)
    session.flush()
    if spec.default:
        _take_default(session, row, by)
    _audit(session, by, "team.updated", name, before, after)
    return row


def delete_team(session: Session, name: str, by: Actor) -> None:
    row = get_team(session, name)
    channel_names = [channel.name for channel in repo.channels(session, row.id)]
    rule_names = repo.rule_names_for_team(session, name)
    if channel_names or rule_names:
        users = []
        if channel_names:
            users.append(f"channel(s) {', '.join(channel_names)}")
        if rule_names:
            users.append(f"rule(s) {', '.join(rule_names)}")
        raise ConflictError(
            f"team {name!r} is still used by {' and '.join(users)}; delete them or move them to another "
            "team first"
        )
    before = _json(team_spec(row))
    repo.remove(session, row)
    _audit(session, by, "team.deleted", name, before, None)


# Channels


def channel_spec(row: NotificationChannel, team_name: str) -> ChannelSpec:
    return ChannelSpec(
        name=row.name,
        team=team_name,
        kind=row.kind,
        target=row.target,
        secret_ref=row.secret_ref,
        options=row.options,
        enabled=row.enabled,
    )


def get_channel(session: Session, name: str) -> NotificationChannel:
    row = repo.channel_by_name(session, name)
    if row is None:
        raise NotFoundError(f"no channel named {name!r}")
    return row


_OPTION_FIELD = re.compile(r"(?:^|: )((?:kind|target|options)(?:\.[\w-]+)*):")


def check_channel(spec: ChannelSpec) -> None:
    """The channel kind's own check of target and options (a typo is refused before it is stored).

    Kinds without a module yet are accepted with their options stored as given."""
    from integrations.channels import CHANNEL_KINDS, validate_channel

    if spec.kind not in CHANNEL_KINDS:
        return
    try:
        validate_channel(spec.kind, spec.target, spec.options)
    except ValueError as exc:
        message = str(exc)
        match = _OPTION_FIELD.search(message)
        raise ValidationFailed(message, field=match.group(1) if match else "options") from None


def _team_id(session: Session, team: str) -> str:
    row = repo.team_by_name(session, team)
    if row is None:
        raise ValidationFailed(f"no team named {team!r}; create the team first", field="team")
    return row.id


def _write_channel(row: NotificationChannel, spec: ChannelSpec, team_id: str) -> None:
    row.team_id = team_id
    row.kind = spec.kind
    row.target = spec.target
    row.secret_ref = spec.secret_ref
    row.options = dict(spec.options)
    row.enabled = spec.enabled
    row.updated_at = utcnow()


def create_channel(session: Session, spec: ChannelSpec, by: Actor) -> NotificationChannel:
    team_id = _team_id(session, spec.team)
    check_channel(spec)
    if repo.channel_by_name(session, spec.name) is not None:
        raise ConflictError(f"a channel named {spec.name!r} already exists")
    now = utcnow()
    row = NotificationChannel(
        id=new_id(),
        name=spec.name,
        team_id=team_id,
        kind=spec.kind,
        target=spec.target,
        created_at=now,
        updated_at=now,
    )
    _write_channel(row, spec, team_id)
    _insert(session, row, "channel")
    _audit(session, by, "channel.created", spec.name, None, _json(spec))
    return row


def replace_channel(session: Session, name: str, spec: ChannelSpec, by: Actor) -> NotificationChannel:
    _same_name(name, spec.name, "channel")
    row = get_channel(session, name)
    team_id = _team_id(session, spec.team)
    check_channel(spec)
    current = channel_spec(row, repo.team_names_by_id(session)[row.team_id])
    before, after = _changed(_json(current), _json(spec))
    if not after:
        return row
    _write_channel(row, spec, team_id)
    session.flush()
    _audit(session, by, "channel.updated", name, before, after)
    return row


def delete_channel(session: Session, name: str, by: Actor) -> None:
    row = get_channel(session, name)
    before = _json(channel_spec(row, repo.team_names_by_id(session).get(row.team_id, "?")))
    repo.remove(session, row)
    _audit(session, by, "channel.deleted", name, before, None)


# Rules


def rule_spec(row: RoutingRule) -> RuleSpec:
    return RuleSpec.model_validate(
        {
            "name": row.name,
            "match": row.matchers,
            "team": row.team,
            "team_from_tag": row.team_from_tag,
            "continue": row.continue_matching,
            "policy": row.policy,
            "enabled": row.enabled,
        }
    )


def get_rule(session: Session, name: str) -> RoutingRule:
    row = repo.rule_by_name(session, name)
    if row is None:
        raise NotFoundError(f"no rule named {name!r}")
    return row


def _check_rule(session: Session, spec: RuleSpec) -> None:
    if spec.name in RESERVED_RULE_NAMES:
        raise ValidationFailed(f"{spec.name!r} is reserved; pick another rule name", field="name")
    if spec.team is not None and repo.team_by_name(session, spec.team) is None:
        raise ValidationFailed(f"no team named {spec.team!r}; create the team first", field="team")


def _write_rule(row: RoutingRule, spec: RuleSpec) -> None:
    row.matchers = _json(spec.match, exclude_none=True)
    row.team = spec.team
    row.team_from_tag = spec.team_from_tag
    row.continue_matching = spec.continue_
    row.policy = _json(spec.policy, exclude_none=True)
    row.enabled = spec.enabled
    row.updated_at = utcnow()


def create_rule(session: Session, spec: RuleSpec, by: Actor, position: int | None = None) -> RoutingRule:
    """Append the rule, or insert it at ``position`` (0 = tried first), moving later rules down."""
    _check_rule(session, spec)
    if repo.rule_by_name(session, spec.name) is not None:
        raise ConflictError(f"a rule named {spec.name!r} already exists")
    count = repo.rule_count(session)
    if position is None:
        position = count
    elif not 0 <= position <= count:
        raise ValidationFailed(
            f"position must be between 0 and {count} (the number of rules)", field="position"
        )
    repo.shift_rules(session, position, 1)
    now = utcnow()
    row = RoutingRule(id=new_id(), name=spec.name, position=position, created_at=now, updated_at=now)
    _write_rule(row, spec)
    _insert(session, row, "rule")
    _audit(session, by, "rule.created", spec.name, None, {**_json(spec), "position": position})
    return row


def replace_rule(session: Session, name: str, spec: RuleSpec, by: Actor) -> RoutingRule:
    """Replace a rule's content; it keeps its place (``PUT /v1/rules/order`` moves rules)."""
    _same_name(name, spec.name, "rule")
    row = get_rule(session, name)
    _check_rule(session, spec)
    before, after = _changed(_json(rule_spec(row)), _json(spec))
    if not after:
        return row
    _write_rule(row, spec)
    session.flush()
    _audit(session, by, "rule.updated", name, before, after)
    return row


def delete_rule(session: Session, name: str, by: Actor) -> None:
    row = get_rule(session, name)
    before = {**_json(rule_spec(row)), "position": row.position}
    repo.delete_rule(session, row)
    _audit(session, by, "rule.deleted", name, before, None)


def reorder_rules(session: Session, names: Sequence[str], by: Actor) -> Sequence[RoutingRule]:
    """Set the order of all rules at once; the list must hold each current rule exactly once."""
    duplicates = sorted({name for name in names if list(names).count(name) > 1})
    if duplicates:
        raise ValidationFailed(f"rule(s) listed more than once: {', '.join(duplicates)}", field="names")
    current = [row.name for row in repo.rules(session)]
    missing = [name for name in current if name not in names]
    unknown = [name for name in names if name not in current]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        raise ConflictError(
            f"the order must list every current rule exactly once ({'; '.join(problems)}); "
            "GET /v1/rules for the current list"
        )
    if list(names) != current:
        repo.set_rule_positions(session, names)
        _audit(session, by, "rule.reordered", "rules", {"order": current}, {"order": list(names)})
    return repo.rules(session)


# Silences


def get_silence(session: Session, silence_id: str) -> Silence:
    row = repo.silence_by_id(session, silence_id)
    if row is None:
        raise NotFoundError(f"no silence with id {silence_id!r}")
    return row


def silence_summary(row: Silence) -> dict[str, Any]:
    return {
        "match": row.matchers,
        "finding_id": row.finding_id,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "reason": row.reason,
        "created_by": row.created_by,
    }


def _write_silence(row: Silence, spec: SilenceSpec, now: datetime) -> None:
    row.matchers = _json(spec.match, exclude_none=True)
    row.finding_id = spec.finding_id
    row.starts_at = spec.starts_at or row.starts_at or now
    row.ends_at = spec.ends_at
    row.reason = spec.reason
    row.updated_at = now


def create_silence(session: Session, spec: SilenceSpec, by: Actor, silence_id: str | None = None) -> Silence:
    """A new silence; ``starts_at`` defaults to now and ``created_by`` to the actor."""
    now = utcnow()
    if silence_id is not None and repo.silence_by_id(session, silence_id) is not None:
        raise ConflictError(f"a silence with id {silence_id!r} already exists")
    row = Silence(
        id=silence_id or new_id(),
        created_by=spec.created_by or by.name,
        created_at=now,
        updated_at=now,
        starts_at=spec.starts_at or now,
        ends_at=spec.ends_at,
        reason=spec.reason,
    )
    _write_silence(row, spec, now)
    repo.add(session, row)
    _audit(session, by, "silence.created", row.id, None, silence_summary(row))
    return row


def replace_silence(session: Session, silence_id: str, spec: SilenceSpec, by: Actor) -> Silence:
    row = get_silence(session, silence_id)
    now = utcnow()
    if repo.silence_state(row, now) == "expired":
        raise ConflictError(f"silence {silence_id!r} has expired and cannot change; create a new one")
    before = silence_summary(row)
    _write_silence(row, spec, now)
    if spec.created_by:
        row.created_by = spec.created_by
    old, new = _changed(before, silence_summary(row))
    if new:
        session.flush()
        _audit(session, by, "silence.updated", silence_id, old, new)
        outbox.release_silence(session, silence_id, now)  # re-evaluated against the changed silence
    return row


def expire_silence(session: Session, silence_id: str, by: Actor) -> Silence:
    """End a silence now and keep it (listed as expired). Expiring an expired silence changes nothing."""
    row = get_silence(session, silence_id)
    now = utcnow()
    if repo.silence_state(row, now) == "expired":
        return row
    before = {"starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat()}
    row.starts_at = min(row.starts_at, now)
    row.ends_at = now
    row.updated_at = now
    session.flush()
    after = {"starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat()}
    _audit(session, by, "silence.expired", silence_id, before, after)
    outbox.release_silence(session, silence_id, now)  # what it held is due now, not at its old end
    return row


def matchers_of(row: Silence | RoutingRule) -> Matchers:
    return Matchers.model_validate(row.matchers)
