"""/v1/silences: matching findings are stored, routed and visible, but not notified while a silence is
active. Deleting a silence expires it; expired silences stay listed (Alertmanager semantics)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from app.api.deps import AdminCaller, ReadCaller, ReadSessionDep, RequestIdDep, SessionDep
from app.api.docs import error_responses
from app.api.routing_schemas import SILENCE_EXAMPLE, SilenceOut
from app.clock import utcnow
from app.errors import ValidationFailed
from app.models import Silence
from app.pipeline.route_spec import Matchers, SilenceSpec
from app.repositories import routing as repo
from app.routing_config import Actor, create_silence, expire_silence, get_silence, replace_silence

router = APIRouter(prefix="/v1/silences", tags=["routing"])

SilenceId = Annotated[str, Path(max_length=32, description="The silence's id.")]
SilenceBody = Annotated[SilenceSpec, Body(openapi_examples={"pentest": {"value": SILENCE_EXAMPLE}})]


def silence_out(row: Silence) -> SilenceOut:
    return SilenceOut(
        id=row.id,
        match=Matchers.model_validate(row.matchers),
        finding_id=row.finding_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        reason=row.reason,
        created_by=row.created_by,
        state=repo.silence_state(row, utcnow()),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _not_over(body: SilenceSpec) -> None:
    if body.ends_at <= utcnow():
        raise ValidationFailed("ends_at is in the past: the silence would never be active", field="ends_at")


@router.get(
    "",
    summary="List silences",
    description="Newest ending first, each with its computed `state`. Needs `read`.",
    response_model=list[SilenceOut],
    responses=error_responses(401, 403, 422),
)
def list_silences(
    caller: ReadCaller,
    session: ReadSessionDep,
    state: Annotated[repo.SilenceState | None, Query(description="Only silences in this state.")] = None,
) -> list[SilenceOut]:
    return [silence_out(row) for row in repo.silences(session, utcnow(), state)]


@router.get(
    "/{silence_id}",
    summary="Get a silence",
    description="Needs `read`.",
    response_model=SilenceOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_one(silence_id: SilenceId, caller: ReadCaller, session: ReadSessionDep) -> SilenceOut:
    return silence_out(get_silence(session, silence_id))


@router.post(
    "",
    summary="Create a silence",
    description="Matchers as in rules (all must hold), or one `finding_id`. `starts_at` defaults to now; "
    "`ends_at` is required and in the future; `created_by` defaults to the caller's token name. "
    "Needs `admin`.",
    response_model=SilenceOut,
    status_code=201,
    responses=error_responses(401, 403, 422),
)
def post_silence(
    body: SilenceBody, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep
) -> SilenceOut:
    _not_over(body)
    return silence_out(create_silence(session, body, Actor(caller.name, request_id)))


@router.put(
    "/{silence_id}",
    summary="Replace a silence",
    description="Change a pending or active silence (e.g. extend `ends_at`); an expired silence cannot "
    "change (409): create a new one. Needs `admin`.",
    response_model=SilenceOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def put_silence(
    silence_id: SilenceId,
    body: SilenceBody,
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> SilenceOut:
    _not_over(body)
    return silence_out(replace_silence(session, silence_id, body, Actor(caller.name, request_id)))


@router.delete(
    "/{silence_id}",
    summary="Expire a silence",
    description="Ends it now (`ends_at` = now) and keeps it, listed with `state=expired`; findings it held "
    "back notify on the next evaluation. Expiring an expired silence changes nothing. Needs `admin`.",
    response_model=SilenceOut,
    responses=error_responses(401, 403, 404, 422),
)
def delete_one(
    silence_id: SilenceId, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep
) -> SilenceOut:
    return silence_out(expire_silence(session, silence_id, Actor(caller.name, request_id)))
