"""/v1/channels: where a team is told (Slack, email, ...). A channel names its secret, never holds it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from sqlalchemy.orm import Session

from app.api.deps import AdminCaller, ReadCaller, ReadSessionDep, RequestIdDep, SessionDep, SettingsDep
from app.api.docs import error_responses
from app.api.routing_schemas import CHANNEL_EXAMPLE, ChannelOut, ChannelPatch, patched
from app.delivery.secrets import SecretMissing, resolve_secret
from app.models import NotificationChannel
from app.pipeline.route_spec import NAME_PATTERN, ChannelSpec
from app.repositories import routing as repo
from app.routing_config import (
    Actor,
    channel_spec,
    create_channel,
    delete_channel,
    get_channel,
    replace_channel,
)
from app.settings import Settings

router = APIRouter(prefix="/v1/channels", tags=["routing"])

ChannelName = Annotated[str, Path(pattern=NAME_PATTERN, description="The channel's name.")]
ChannelBody = Annotated[ChannelSpec, Body(openapi_examples={"slack": {"value": CHANNEL_EXAMPLE}})]


def secret_configured(secret_ref: str | None, settings: Settings) -> bool:
    """Whether delivery would find the secret now (TOCSIN_SECRET_<NAME> or TOCSIN_SECRETS_DIR/<NAME>),
    checked with the resolver delivery uses; the value never leaves this function."""
    if not secret_ref:
        return False
    try:
        resolve_secret(secret_ref, settings.secrets_dir)
    except SecretMissing:
        return False
    return True


def channel_out(row: NotificationChannel, team_name: str, settings: Settings) -> ChannelOut:
    return ChannelOut(
        **channel_spec(row, team_name).model_dump(),
        secret_configured=secret_configured(row.secret_ref, settings),
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _out(session: Session, row: NotificationChannel, settings: Settings) -> ChannelOut:
    return channel_out(row, repo.team_names_by_id(session)[row.team_id], settings)


@router.get(
    "",
    summary="List channels",
    description="Every channel with its team, target, options and `secret_ref` (the secret's name) and "
    "whether that secret is configured. Needs `read`.",
    response_model=list[ChannelOut],
    responses=error_responses(401, 403),
)
def list_channels(caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep) -> list[ChannelOut]:
    teams = repo.team_names_by_id(session)
    return [channel_out(row, teams[row.team_id], settings) for row in repo.channels(session)]


@router.get(
    "/{name}",
    summary="Get a channel",
    description="Needs `read`.",
    response_model=ChannelOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_one(
    name: ChannelName, caller: ReadCaller, session: ReadSessionDep, settings: SettingsDep
) -> ChannelOut:
    return _out(session, get_channel(session, name), settings)


@router.post(
    "",
    summary="Create a channel",
    description="`team` must exist. The kind's own checks run on `target` and `options` (for Slack: a "
    "channel id such as C0123ABCD or #name). Put the credential in TOCSIN_SECRET_<secret_ref> or "
    "`<TOCSIN_SECRETS_DIR>/<secret_ref>`, never in options. Needs `admin`.",
    response_model=ChannelOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def post_channel(
    body: ChannelBody,
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
    settings: SettingsDep,
) -> ChannelOut:
    return _out(session, create_channel(session, body, Actor(caller.name, request_id)), settings)


@router.put(
    "/{name}",
    summary="Replace a channel",
    description="The body is the whole channel; its `name` must be the URL's. Needs `admin`.",
    response_model=ChannelOut,
    responses=error_responses(401, 403, 404, 422),
)
def put_channel(
    name: ChannelName,
    body: ChannelBody,
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
    settings: SettingsDep,
) -> ChannelOut:
    return _out(session, replace_channel(session, name, body, Actor(caller.name, request_id)), settings)


@router.patch(
    "/{name}",
    summary="Change some of a channel's fields",
    description="Top-level fields given replace the current ones (`options` is replaced whole). "
    "Needs `admin`.",
    response_model=ChannelOut,
    responses=error_responses(401, 403, 404, 422),
)
def patch_channel(
    name: ChannelName,
    body: Annotated[ChannelPatch, Body(openapi_examples={"disable": {"value": {"enabled": False}}})],
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
    settings: SettingsDep,
) -> ChannelOut:
    row = get_channel(session, name)
    spec = patched(ChannelSpec, channel_spec(row, repo.team_names_by_id(session)[row.team_id]), body)
    return _out(session, replace_channel(session, name, spec, Actor(caller.name, request_id)), settings)


@router.delete(
    "/{name}",
    summary="Delete a channel",
    description="Its pending notifications go with it. Needs `admin`.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
def delete_one(name: ChannelName, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep) -> None:
    delete_channel(session, name, Actor(caller.name, request_id))
