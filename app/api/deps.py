"""Dependencies shared by the routers: settings, engine, the request's session, the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.api.limits import AbuseLimits
from app.auth import Principal, authenticate, require_scope, touch_token
from app.db import read_only, unit_of_work
from app.errors import Unauthorized
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tcn_...`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    """The request's transaction: committed before the response is sent (scope="function")."""
    with unit_of_work(engine) as session:
        yield session


def get_read_session(engine: EngineDep) -> Iterator[Session]:
    """A read-only transaction (on SQLite it never waits for a writer)."""
    with unit_of_work(read_only(engine)) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def _principal_of(engine: Engine, settings: Settings, presented: str | None) -> Principal:
    """Authenticate in a short read of its own; ``last_used_at`` is written at most once a minute."""
    with unit_of_work(read_only(engine)) as session:
        principal, stale = authenticate(session, presented, timedelta(seconds=settings.token_touch_seconds))
    if stale:
        with unit_of_work(engine) as session:
            touch_token(session, principal)
    return principal


def get_principal(
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return _principal_of(engine, settings, credentials.credentials if credentials else None)


def get_principal_or_api_key(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The bearer token, or else the same kind of token in ``TOCSIN_EVENTBRIDGE_API_KEY_HEADER``.

    EventBridge API-destination connections can only send a fixed header; its value is an ordinary
    Tocsin token, so it is hashed, looked up, revocable and scoped exactly like a bearer token.
    """
    header = settings.eventbridge_api_key_header
    presented = credentials.credentials if credentials else None
    if presented is None and header:
        presented = request.headers.get(header) or None
        if presented is None:
            raise Unauthorized(
                f"missing credentials: send 'Authorization: Bearer <token>' or the token in the {header} header"
            )
    return _principal_of(engine, settings, presented)


def limits_of(request: Request) -> AbuseLimits:
    limits: AbuseLimits = request.app.state.limits
    return limits


def scoped(
    scope: str, authenticate_with: Callable[..., Principal] = get_principal
) -> Callable[..., Principal]:
    """The caller, if its token has ``scope``; a ``read`` caller also counts against its read rate."""

    # A default, not Annotated: the annotation would be resolved in this module's globals, where
    # ``authenticate_with`` (a closure variable) does not exist.
    def dependency(request: Request, principal: Principal = Depends(authenticate_with)) -> Principal:
        require_scope(principal, scope)
        if scope == "read":
            limits_of(request).reading(principal)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


def ingesting(
    authenticate_with: Callable[..., Principal] = get_principal,
) -> Callable[..., Iterator[Principal]]:
    """The caller of an ingest endpoint: ``ingest`` scope, within its rate, holding one of its
    concurrent-ingest slots until the endpoint returns. Endpoints declare it before their body, so a
    refused caller is answered before its body is read."""

    def dependency(
        request: Request, principal: Principal = Depends(authenticate_with)
    ) -> Iterator[Principal]:
        require_scope(principal, "ingest")
        with limits_of(request).ingesting(principal):
            yield principal

    dependency.__name__ = "require_ingest"
    return dependency


IngestCaller = Annotated[Principal, Depends(ingesting(), scope="function")]
IngestOrApiKeyCaller = Annotated[Principal, Depends(ingesting(get_principal_or_api_key), scope="function")]
ReadCaller = Annotated[Principal, Depends(scoped("read"))]
TriageCaller = Annotated[Principal, Depends(scoped("triage"))]
AdminCaller = Annotated[Principal, Depends(scoped("admin"))]


async def read_body(request: Request) -> bytes:
    """The raw request body; the body-size middleware has already refused one over the limit."""
    return await request.body()


RawBody = Annotated[bytes, Depends(read_body)]


def request_id(request: Request) -> str | None:
    value: str | None = getattr(request.state, "request_id", None)
    return value


RequestIdDep = Annotated[str | None, Depends(request_id)]
