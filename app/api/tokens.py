"""/v1/tokens: admin management of API tokens (the secret is shown once, at creation)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import AdminCaller, ReadSessionDep, RequestIdDep, SessionDep
from app.api.docs import error_responses
from app.api.schemas import TokenCreate, TokenCreated, TokenOut
from app.auth import audit_created, audit_revoked, create_token, revoke_token
from app.models import ApiToken
from app.repositories import tokens as repo

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


def _out(token: ApiToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


@router.get(
    "",
    summary="List tokens",
    description="Names, scopes and usage of every token; never the secrets. Needs `admin`.",
    response_model=list[TokenOut],
    responses=error_responses(401, 403),
)
def list_tokens(caller: AdminCaller, session: ReadSessionDep) -> list[TokenOut]:
    return [_out(token) for token in repo.all_tokens(session)]


@router.post(
    "",
    summary="Create a token",
    description="Returns the secret once. Scopes: ingest, read, triage, admin. `sources` binds an ingest "
    "token to the finding sources it may post. Needs `admin`.",
    response_model=TokenCreated,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def post_token(
    body: TokenCreate, caller: AdminCaller, session: SessionDep, request_id: RequestIdDep
) -> TokenCreated:
    sources = list(body.sources) if body.sources is not None else None
    token, secret = create_token(session, body.name, list(body.scopes), body.expires_at, sources=sources)
    audit_created(session, token, caller.name, request_id)
    return TokenCreated(**_out(token).model_dump(), token=secret)


@router.delete(
    "/{name}",
    summary="Revoke a token",
    description="Takes effect on the next request, on every replica. Revoking a revoked token changes "
    "nothing and answers 200. Needs `admin`.",
    response_model=TokenOut,
    responses=error_responses(401, 403, 404, 422),
)
def delete_token(
    name: Annotated[str, Path(max_length=128)],
    caller: AdminCaller,
    session: SessionDep,
    request_id: RequestIdDep,
) -> TokenOut:
    token, was_active = revoke_token(session, name)
    if was_active:
        audit_revoked(session, name, caller.name, request_id)
    return _out(token)
