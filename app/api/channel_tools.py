"""Preview and test send: see what a channel would show, and check that it works, before a real finding.

``GET /v1/findings/{id}/preview?channel=NAME`` renders the message the channel would get for that finding
without sending anything. It uses the channel module's pure ``render(notification) -> dict`` (the payload it
would send); **every channel module should expose one** (Slack does; a kind without it answers 409).
``POST /v1/channels/{name}/test`` sends a sample message right now through the dispatcher's own send path
(secret resolved, outbound guard, timeout, secret scrubbed from the detail), so a test passes exactly when a
real delivery would.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from app.api.deps import AdminCaller, EngineDep, ReadCaller, ReadSessionDep, RequestIdDep, SettingsDep
from app.api.docs import error_responses
from app.clock import new_id, utcnow
from app.db import run_transaction
from app.delivery.dispatcher import Dispatcher
from app.delivery.messages import build_message
from app.errors import ConflictError, NotFoundError
from app.models import NotificationChannel
from app.pipeline.route_spec import NAME_PATTERN
from app.repositories import audit
from app.repositories import finding_queries as queries
from app.repositories import routing as repo
from app.routing_config import get_channel
from integrations.channels import CHANNEL_KINDS
from integrations.testing_channels import sample_notification

router = APIRouter(prefix="/v1", tags=["routing"])

ChannelName = Annotated[str, Path(pattern=NAME_PATTERN, description="The channel's name.")]


class TestSendResult(BaseModel):
    ok: bool
    status_code: int | None
    detail: str
    retryable: bool


class PreviewOut(BaseModel):
    finding_id: str
    channel: str
    kind: str
    message: dict[str, Any]
    """What the channel would send (for Slack: text and blocks)."""


def _row(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "target": channel.target,
        "options": dict(channel.options or {}),
        "secret_ref": channel.secret_ref,
    }


@router.post(
    "/channels/{name}/test",
    summary="Send a test message",
    description="Sends a sample finding message through the channel now (its secret, the outbound guard "
    "and the send timeout apply as for a real delivery) and reports what the destination answered. "
    "Audited. Needs `admin`.",
    response_model=TestSendResult,
    responses=error_responses(401, 403, 404, 422),
)
async def test_send(
    name: ChannelName,
    caller: AdminCaller,
    engine: EngineDep,
    settings: SettingsDep,
    request_id: RequestIdDep,
) -> TestSendResult:
    def load(session: Any) -> tuple[dict[str, Any], str]:
        channel = get_channel(session, name)
        return _row(channel), repo.team_names_by_id(session)[channel.team_id]

    row, team = run_transaction(engine, load, 2)
    message = sample_notification(1, team=team, title="Tocsin test message: this channel works")
    message = message.model_copy(update={"id": new_id(), "channel": name})
    dispatcher = Dispatcher(engine, settings, worker_id=f"test-send:{caller.name}")
    try:
        result = await dispatcher._send(row, message)
    finally:
        await dispatcher.aclose()
    out = TestSendResult(
        ok=result.ok, status_code=result.status_code, detail=result.detail, retryable=result.retryable
    )

    def record(session: Any) -> None:
        audit.record(
            session,
            actor=caller.name,
            action="channel.tested",
            target_type="channel",
            target_id=name,
            before=None,
            after=out.model_dump(),
            request_id=request_id,
            at=utcnow(),
        )

    run_transaction(engine, record, 2)
    return out


@router.get(
    "/findings/{finding_id}/preview",
    summary="Preview a finding's message",
    description="The message `channel` would get for this finding (as a new finding), rendered without "
    "sending. 409 when the channel's kind cannot render a preview. Needs `read`.",
    response_model=PreviewOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def preview(
    finding_id: Annotated[str, Path(min_length=1, max_length=64)],
    channel: Annotated[str, Query(pattern=NAME_PATTERN, description="The channel's name.")],
    caller: ReadCaller,
    session: ReadSessionDep,
    settings: SettingsDep,
) -> PreviewOut:
    row = queries.get_finding(session, finding_id)
    if row is None:
        raise NotFoundError(f"no finding with id {finding_id!r}")
    target = get_channel(session, channel)
    render = getattr(CHANNEL_KINDS.get(target.kind), "render", None)
    if render is None:
        raise ConflictError(f"preview not supported for {target.kind}")
    finding = dict(row._mapping)
    message = build_message(
        message_id=new_id(),
        team=str(finding.get("team") or repo.team_names_by_id(session).get(target.team_id, "")),
        channel_name=target.name,
        group_key=f"finding={finding_id}",
        group_labels={"finding": finding_id},
        thread_ref=None,
        digest=False,
        items=[("new", finding)],
        public_url=settings.public_url,
    )
    return PreviewOut(finding_id=finding_id, channel=target.name, kind=target.kind, message=render(message))
