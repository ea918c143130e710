"""What a click on a Slack triage button does, once the interaction has been acknowledged.

Slack wants an answer within 3 s, so ``POST /v1/slack/interactions`` only verifies the signature, parses
the clicks and acks; ``handle`` runs after the response. A click goes through the same code as the API
(``pipeline.triage.change_status`` for a status, ``routing_config.create_silence`` for a snooze, the outbox
for a ticket) and leaves an audit record with the actor ``slack:<user id>`` and the user's name. Then the
original message is updated (``chat.update`` with the bot token of our channel posting there) with a status
line under the finding's buttons, e.g. "✅ Acknowledged by @alice".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.contracts import OutboundPolicy
from app.db import run_transaction
from app.delivery import outbound
from app.delivery.secrets import SecretMissing, resolve_secret
from app.errors import AppError, NotFoundError
from app.models import NotificationChannel
from app.pipeline import triage
from app.pipeline.dedupe import ACKNOWLEDGED, FALSE_POSITIVE, RESOLVED
from app.pipeline.route_spec import SilenceSpec
from app.repositories import audit, outbox
from app.repositories import routing as routing_repo
from app.repositories import triage as triage_repo
from app.repositories.findings import findings_t
from app.routing_config import Actor, create_silence
from app.settings import Settings
from integrations.channels import build_channel
from integrations.channels.slack import SlackChannel
from integrations.channels.slack_blocks import ACTION_PREFIX, with_status_line

log = logging.getLogger("tocsin.slack")

STATUS_ACTIONS = {"acknowledge": ACKNOWLEDGED, "resolve": RESOLVED, "false_positive": FALSE_POSITIVE}
SNOOZE = timedelta(days=7)
TICKET_KINDS = ("jira", "github")
ACTIONS = frozenset({*STATUS_ACTIONS, "snooze", "open_ticket"})
_DONE = {"acknowledge": "Acknowledged", "resolve": "Resolved", "false_positive": "Marked false positive"}
DB_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Click:
    """One button click from a ``block_actions`` payload."""

    action: str
    finding_id: str
    user_id: str
    user_name: str
    channel_id: str | None
    message_ts: str | None
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def actor(self) -> str:
        return f"slack:{self.user_id}"


def parse_clicks(payload: Mapping[str, Any]) -> list[Click]:
    """Our buttons' clicks in an interaction payload (other types and foreign action ids are ignored)."""
    if payload.get("type") != "block_actions":
        return []
    user, channel, container, message = (
        _object(payload, key) for key in ("user", "channel", "container", "message")
    )
    user_id = str(user.get("id") or "")
    if not user_id:
        return []
    name = str(user.get("username") or user.get("name") or user_id)[:128]
    clicks = []
    for action in payload.get("actions") or []:
        if not isinstance(action, dict):
            continue
        action_id = str(action.get("action_id") or "")
        kind = action_id.removeprefix(ACTION_PREFIX)
        value = str(action.get("value") or "")
        if not action_id.startswith(ACTION_PREFIX) or kind not in ACTIONS or not value or len(value) > 64:
            continue
        clicks.append(
            Click(
                action=kind,
                finding_id=value,
                user_id=user_id[:64],
                user_name=name,
                channel_id=_str(channel.get("id") or container.get("channel_id")),
                message_ts=_str(message.get("ts") or container.get("message_ts")),
                thread_ts=_str(message.get("thread_ts")),
                text=str(message.get("text") or ""),
                blocks=[b for b in message.get("blocks") or [] if isinstance(b, dict)],
            )
        )
    return clicks


def _object(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(slots=True)
class Outcome:
    """What a click did: the status line to show, and our Slack channel to update the message with."""

    line: str | None
    channel: dict[str, Any] | None


def apply_click(session: Session, click: Click, now: datetime) -> Outcome:
    """The click's change, in the caller's transaction. Raises ``AppError`` (not found, invalid transition)."""
    who = f"<@{click.user_id}>"
    if click.action in STATUS_ACTIONS:
        change = triage.change_status(
            session,
            click.finding_id,
            STATUS_ACTIONS[click.action],
            f"from Slack by {click.user_name}",
            None,
            click.actor,
            now,
        )
        _audit(session, click, "finding.triage", change.before, change.after, now)
        line = f"✅ {_DONE[click.action]} by {who}"
    elif click.action == "snooze":
        _finding(session, click.finding_id)
        spec = SilenceSpec(
            finding_id=click.finding_id,
            ends_at=now + SNOOZE,
            reason=f"Snoozed for 7 days from Slack by {click.user_name}",
            created_by=click.actor,
        )
        silence = create_silence(session, spec, Actor(click.actor))
        line = f"💤 Snoozed until {silence.ends_at:%Y-%m-%d %H:%M} UTC by {who}"
    else:
        line = _open_ticket(session, click, now)
    return Outcome(line, _our_channel(session, click))


def _finding(session: Session, finding_id: str) -> Any:
    row = triage_repo.lock_finding(session, finding_id)
    if row is None:
        raise NotFoundError(f"no finding with id {finding_id!r}")
    return row


def _open_ticket(session: Session, click: Click, now: datetime) -> str:
    """Queue the finding for its team's ticket channel, due now, in a group of its own."""
    _finding(session, click.finding_id)
    team = _team_of(session, click)
    teams = routing_repo.team_names_by_id(session)
    tickets = [
        row
        for row in routing_repo.channels(session)
        if row.kind in TICKET_KINDS and row.enabled and teams.get(row.team_id) == team
    ]
    if team is None or not tickets:
        return f"⚠️ {click.user_name}: team {team or '(none)'} has no ticket channel (Jira or GitHub) to open one in"
    ticket = sorted(tickets, key=lambda row: row.name)[0]
    intent = outbox.Intent(
        finding_id=click.finding_id,
        channel_id=ticket.id,
        team=team,
        event="new",
        routed_by=click.actor,
        group_key=f"finding={click.finding_id}",
        group_labels={"finding": click.finding_id},
        group_wait=0.0,
        group_interval=0.0,
    )
    queued = outbox.enqueue(session, [intent], now)
    _audit(
        session,
        click,
        "finding.ticket_requested",
        None,
        {"channel": ticket.name, "queued": queued},
        now,
    )
    return f"🎫 Ticket requested by <@{click.user_id}> ({ticket.kind} channel {ticket.name})"


def _team_of(session: Session, click: Click) -> str | None:
    query = select(findings_t.c.team).where(findings_t.c.id == click.finding_id)
    team = session.execute(query).scalar_one_or_none()
    if team:
        return str(team)
    channel = _our_channel(session, click)
    if channel is None:
        return None
    return routing_repo.team_names_by_id(session).get(channel["team_id"])


def _audit(
    session: Session,
    click: Click,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    audit.record(
        session,
        actor=click.actor,
        action=action,
        target_type="finding",
        target_id=click.finding_id,
        before=before,
        after={**(after or {}), "slack_user_id": click.user_id, "slack_user_name": click.user_name},
        request_id=None,
        at=now,
    )


def _our_channel(session: Session, click: Click) -> dict[str, Any] | None:
    """Our Slack channel that posted the message: by its target (the Slack channel id), else through the
    notification group whose thread the message started."""
    rows: Sequence[NotificationChannel] = [
        row for row in routing_repo.channels(session) if row.kind == "slack" and row.enabled
    ]
    match = next((row for row in rows if click.channel_id and row.target == click.channel_id), None)
    if match is None:
        refs = [ts for ts in (click.message_ts, click.thread_ts) if ts]
        if refs:
            groups = outbox.GROUPS
            query = select(groups.c.channel_id).where(groups.c.thread_ref.in_(refs)).limit(1)
            channel_id = session.execute(query).scalar_one_or_none()
            match = next((row for row in rows if row.id == channel_id), None)
    if match is None:
        return None
    return {
        "id": match.id,
        "name": match.name,
        "team_id": match.team_id,
        "kind": match.kind,
        "target": match.target,
        "options": dict(match.options or {}),
        "secret_ref": match.secret_ref,
    }


async def handle(engine: Engine, settings: Settings, click: Click) -> None:
    """Apply one click and update its message; runs after the ack, so it logs instead of answering."""
    try:
        outcome = await asyncio.to_thread(
            run_transaction, engine, lambda s: apply_click(s, click, utcnow()), DB_ATTEMPTS
        )
    except AppError as exc:
        log.warning(
            "slack action %s on finding %s by %s not applied: %s",
            click.action,
            click.finding_id,
            click.actor,
            exc.message,
        )
        if exc.status_code == 404:
            return
        outcome = Outcome(f":information_source: <@{click.user_id}>: {exc.message}", None)
        outcome.channel = await asyncio.to_thread(_channel_for, engine, click)
    log.info(
        "slack action %s on finding %s by %s",
        click.action,
        click.finding_id,
        click.actor,
        extra={"slack_user": click.user_name},
    )
    if outcome.line and outcome.channel and click.channel_id and click.message_ts:
        await update_message(settings, outcome.channel, click, outcome.line)


def _channel_for(engine: Engine, click: Click) -> dict[str, Any] | None:
    return run_transaction(engine, lambda s: _our_channel(s, click), DB_ATTEMPTS)


async def update_message(settings: Settings, row: Mapping[str, Any], click: Click, line: str) -> None:
    """``chat.update`` of the clicked message with the status line, through our channel's bot token and
    the outbound guard, as a delivery would."""
    assert click.channel_id and click.message_ts
    secret = None
    if row.get("secret_ref"):
        try:
            secret = resolve_secret(str(row["secret_ref"]), settings.secrets_dir)
        except SecretMissing as exc:
            log.warning("cannot update the slack message: %s", exc)
            return
    policy = OutboundPolicy(frozenset(h.lower() for h in settings.outbound_allow_hosts))
    try:
        channel = build_channel(str(row["kind"]), str(row["target"]), row.get("options"), secret, policy)
    except ValueError as exc:
        log.warning("cannot update the slack message: invalid channel %s: %s", row.get("name"), exc)
        return
    try:
        if not isinstance(channel, SlackChannel):  # webhook mode: messages cannot be updated
            return
        refused = await asyncio.to_thread(outbound.refusal, channel.endpoint, settings.outbound_allow_hosts)
        if refused is not None:
            log.warning("cannot update the slack message: %s", refused)
            return
        blocks = with_status_line(click.blocks, click.finding_id, line)
        result = await channel.update_message(click.channel_id, click.message_ts, click.text or line, blocks)
        if not result.ok:
            log.warning("slack chat.update failed: %s", result.detail)
    finally:
        await channel.aclose()
