"""/v1/teams: the teams findings are routed to, with their timezone, quiet hours and notification policy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from app.api.deps import AdminCaller, ReadCaller, ReadSessionDep, RequestIdDep, SessionDep
from app.api.docs import error_responses
from app.api.routing_schemas import TEAM_EXAMPLE, TeamOut, TeamPatch, patched
from app.models import Team
from app.pipeline.route_spec import NAME_PATTERN, TeamSpec
from app.repositories import routing as repo
from app.routing_config import Actor, create_team, delete_team, get_team, replace_team, team_spec

router = APIRouter(prefix="/v1/teams", tags=["routing"])

TeamName = Annotated[str, Path(pattern=NAME_PATTERN, description="The team's name.")]
TeamBody = Annotated[TeamSpec, Body(openapi_examples={"payments": {"value": TEAM_EXAMPLE}})]


def team_out(row: Team) -> TeamOut:
    return TeamOut(
        **team_spec(row).model_dump(), id=row.id, created_at=row.created_at, updated_at=row.updated_at
    )


@router.get(
    "",
    summary="List teams",
    description="Every team by name, with its policy and quiet hours. Needs `read`.",
    response_model=list[TeamOut],
    responses=error_responses(401, 403),
)
def list_teams(caller: ReadCaller, session: ReadSessionDep) -> list[TeamOut]:
    return [team_out(row) for row in repo.teams(session)]


@router.get(
    "/{name}",
    summary="Get a team",
    description="Needs `read`.",
    response_model=TeamOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_one(name: TeamName, caller: ReadCaller, session: ReadSessionDep) -> TeamOut:
    return team_out(get_team(session, name))


@router.post(
    "",
    summary="Create a team",
    description="Names are lowercase slugs and never change. `default: true` makes this the team that "
    "catches findings no rule routes; the flag moves from the previous default team. Needs `admin`.",
    response_model=TeamOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def post_team(body: TeamBody, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep) -> TeamOut:
    return team_out(create_team(session, body, Actor(caller.name, request_id)))


@router.put(
    "/{name}",
    summary="Replace a team",
    description="The body is the whole team (omitted fields take their defaults); its `name` must be the "
    "URL's. Needs `admin`.",
    response_model=TeamOut,
    responses=error_responses(401, 403, 404, 422),
)
def put_team(
    name: TeamName, body: TeamBody, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep
) -> TeamOut:
    return team_out(replace_team(session, name, body, Actor(caller.name, request_id)))


@router.patch(
    "/{name}",
    summary="Change some of a team's fields",
    description="Top-level fields given replace the current ones (`policy` and `quiet_hours` are replaced "
    "whole; `null` clears quiet hours). Needs `admin`.",
    response_model=TeamOut,
    responses=error_responses(401, 403, 404, 422),
)
def patch_team(
    name: TeamName,
    body: Annotated[
        TeamPatch, Body(openapi_examples={"timezone": {"value": {"timezone": "America/New_York"}}})
    ],
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> TeamOut:
    spec = patched(TeamSpec, team_spec(get_team(session, name)), body)
    return team_out(replace_team(session, name, spec, Actor(caller.name, request_id)))


@router.delete(
    "/{name}",
    summary="Delete a team",
    description="Refused (409, naming them) while channels or rules refer to the team. Needs `admin`.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 409, 422),
)
def delete_one(name: TeamName, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep) -> None:
    delete_team(session, name, Actor(caller.name, request_id))
